package world_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// worlds starts a cluster of n nodes and returns a World per node, named
// after its node.
func worlds(t *testing.T, n int, opts ...clustertest.Option) (*clustertest.Cluster, []*world.World) {
	t.Helper()
	return worldtest.New(t, n, opts...)
}

func TestKeysAcrossNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		if _, err := ws[0].Put(ctx, "app/port", []byte("8080")); err != nil {
			t.Fatal(err)
		}
		kv, ok, err := ws[2].Get(ctx, "app/port", world.Linearizable())
		if err != nil || !ok || string(kv.Value) != "8080" {
			t.Fatalf("linearizable get on another node: %q %t %v", kv.Value, ok, err)
		}
		// Read your writes on the writing node, without Linearizable.
		if _, err := ws[1].Put(ctx, "app/host", []byte("b")); err != nil {
			t.Fatal(err)
		}
		if kv, ok, _ := ws[1].Get(ctx, "app/host"); !ok || string(kv.Value) != "b" {
			t.Errorf("local read after own write: %q %t", kv.Value, ok)
		}
		// Compare-and-swap.
		if ok, _, err := ws[2].CompareAndSwap(ctx, "app/port", []byte("9090"), []byte("1")); err != nil || ok {
			t.Errorf("CAS with the wrong old value: %t %v", ok, err)
		}
		if ok, _, err := ws[2].CompareAndSwap(ctx, "app/port", []byte("8080"), []byte("9090")); err != nil || !ok {
			t.Errorf("CAS with the right old value: %t %v", ok, err)
		}
		if ok, _, _ := ws[0].CompareAndSwap(ctx, "app/new", nil, []byte("x")); !ok {
			t.Error("CAS on an absent key failed")
		}
		kv, _, _ = ws[0].Get(ctx, "app/new", world.Linearizable())
		if ok, _, _ := ws[1].CompareRevAndSwap(ctx, "app/new", kv.ModRev, []byte("y")); !ok {
			t.Error("CAS on the right revision failed")
		}
		kvs, _, err := ws[1].List(ctx, "app/", world.Linearizable())
		var keys []string
		for _, kv := range kvs {
			keys = append(keys, kv.Key+"="+string(kv.Value))
		}
		if err != nil || !slices.Equal(keys, []string{"app/host=b", "app/new=y", "app/port=9090"}) {
			t.Errorf("list: %v %v", keys, err)
		}
		if _, err := ws[0].Delete(ctx, "app/host"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := ws[2].Get(ctx, "app/host", world.Linearizable()); ok {
			t.Error("deleted key still there")
		}
		if _, err := ws[0].Put(ctx, fsm.InternalPrefix+"x", nil); !errors.Is(err, world.ErrReserved) {
			t.Errorf("write to a reserved key: %v", err)
		}
	})
}

// A watch delivers every change in order; one that falls behind the
// history gets a resync with the whole state, and loses no final value.
func TestWatchInOrderAndResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3, clustertest.WithHistory(32))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		evs := ws[1].Watch(ctx, "w/", 0)
		for i := range 5 {
			if _, err := ws[i%3].Put(t.Context(), "w/k", []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for len(got) < 5 {
			ev := <-evs
			for _, e := range ev.Events {
				got = append(got, string(e.KV.Value))
			}
		}
		if !slices.Equal(got, []string{"0", "1", "2", "3", "4"}) {
			t.Errorf("events %v", got)
		}
		// Stop reading while 100 more changes go by (history: 32).
		for i := range 100 {
			if _, err := ws[0].Put(t.Context(), fmt.Sprintf("w/k%d", i%10), []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := ws[1].Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		state := map[string]string{}
		resynced := false
		deadline := time.After(time.Minute)
		for state["w/k9"] != "99" {
			select {
			case ev := <-evs:
				if ev.Resync {
					resynced = true
					clear(state)
					for _, kv := range ev.State {
						state[kv.Key] = string(kv.Value)
					}
				}
				for _, e := range ev.Events {
					state[e.KV.Key] = string(e.KV.Value)
				}
			case <-deadline:
				t.Fatalf("watch never caught up: %v", state)
			}
		}
		if !resynced {
			t.Error("a watcher 100 changes behind a 32-event history was not resynced")
		}
		if len(state) != 11 || state["w/k0"] != "90" {
			t.Errorf("state after resync: %v", state)
		}
	})
}

// Per-host values: each host writes its own; they go when the host expires.
func TestHostValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worlds(t, 3)
		for i, w := range ws {
			if err := w.SetHostValue(t.Context(), "ips", []byte(fmt.Sprintf("10.0.0.%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		vals, _, err := ws[0].HostValues(t.Context(), "ips", world.Linearizable())
		if err != nil || len(vals) != 3 || string(vals["node2"]) != "10.0.0.2" {
			t.Fatalf("host values %v %v", vals, err)
		}
		if _, err := c.Members[0].Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpExpireNode, Node: "node2"}}); err != nil {
			t.Fatal(err)
		}
		vals, _, _ = ws[1].HostValues(t.Context(), "ips", world.Linearizable())
		if _, ok := vals["node2"]; ok || len(vals) != 2 {
			t.Errorf("an expired host's value stayed: %v", vals)
		}
		if err := ws[0].SetHostValue(t.Context(), "bad/ns", nil); err == nil {
			t.Error("a namespace with a slash was accepted")
		}
	})
}

// Exports: each host replaces its set atomically; any host collects by
// kind and name pattern.
func TestExportAndCollect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(ws[0].Export(ctx, []fsm.Export{{Kind: "file", Name: "/etc/a.conf", Data: []byte("a")}, {Kind: "exec", Name: "x", Data: nil}}))
		must(ws[1].Export(ctx, []fsm.Export{{Kind: "file", Name: "/etc/b.conf", Data: []byte("b")}, {Kind: "file", Name: "/srv/c", Data: []byte("c")}}))
		got, _, err := ws[2].Collect(ctx, "file", "/etc/*", world.Linearizable())
		must(err)
		var names []string
		for _, x := range got {
			names = append(names, x.Host+":"+x.Name+"="+string(x.Data))
		}
		if !slices.Equal(names, []string{"node0:/etc/a.conf=a", "node1:/etc/b.conf=b"}) {
			t.Errorf("collected %v", names)
		}
		// Replacing the set drops what is not in it.
		must(ws[1].Export(ctx, []fsm.Export{{Kind: "file", Name: "/srv/c", Data: []byte("c2")}}))
		got, _, _ = ws[2].Collect(ctx, "file", "", world.Linearizable())
		names = names[:0]
		for _, x := range got {
			names = append(names, x.Host+":"+x.Name+"="+string(x.Data))
		}
		if !slices.Equal(names, []string{"node0:/etc/a.conf=a", "node1:/srv/c=c2"}) {
			t.Errorf("after replacing node1's set: %v", names)
		}
		if _, _, err := ws[0].Collect(ctx, "file", "[", world.Linearizable()); err == nil {
			t.Error("a bad pattern was accepted")
		}
	})
}

// Cluster semaphores: at most count holders, FIFO, increasing fencing
// tokens; a cancelled waiter leaves the queue; an expired host's slots go
// to the next waiter and its lease is lost.
func TestSemaphores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worlds(t, 3)
		ctx := t.Context()
		l0, err := ws[0].Acquire(ctx, "db", 2)
		if err != nil {
			t.Fatal(err)
		}
		l1, err := ws[1].Acquire(ctx, "db", 2)
		if err != nil {
			t.Fatal(err)
		}
		if l1.Token() <= l0.Token() {
			t.Errorf("tokens %d then %d: not increasing", l0.Token(), l1.Token())
		}
		_, err = ws[2].Acquire(ctx, "db", 3)
		var refused *world.RefusedError
		if !errors.Is(err, world.ErrRefused) || !errors.As(err, &refused) || !strings.Contains(refused.Reason, "count 2, not 3") {
			t.Errorf("a different count for a live semaphore: %v, want world.ErrRefused saying the count", err)
		}

		// A waiter that gives up leaves the queue.
		cctx, cancel := context.WithCancel(ctx)
		gaveUp := make(chan error, 1)
		go func() { _, err := ws[2].Acquire(cctx, "db", 2); gaveUp <- err }()
		synctest.Wait()
		cancel()
		if err := <-gaveUp; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled acquire: %v", err)
		}

		type grant struct {
			l   *world.Lease
			err error
		}
		third := make(chan grant, 1)
		go func() { l, err := ws[2].Acquire(ctx, "db", 2); third <- grant{l, err} }()
		synctest.Wait()
		select {
		case g := <-third:
			t.Fatalf("a third holder got in: %+v", g)
		default:
		}
		if err := l0.Release(ctx); err != nil {
			t.Fatal(err)
		}
		var g grant
		select {
		case g = <-third:
		case <-time.After(time.Minute):
			st, _ := c.Members[2].FSM().Sema("db")
			t.Fatalf("third never granted; state %+v", st)
		}
		if g.err != nil || g.l.Token() <= l1.Token() {
			t.Fatalf("third acquire: %v, token %d after %d", g.err, g.l.Token(), l1.Token())
		}

		// node1 dies: its slot is released, its lease lost.
		if _, err := c.Members[0].Node().Apply(ctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: "node1"}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-l1.Lost():
		case <-time.After(time.Minute):
			t.Fatal("an expired host's lease was not lost")
		}
		l4, err := ws[0].Acquire(ctx, "db", 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []*world.Lease{g.l, l4, l1} {
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := c.Members[1].FSM().Sema("db"); ok {
			t.Error("the semaphore outlived its last holder")
		}
	})
}

// A host cut off from the quorum treats its slots as lost once it has not
// heard from a leader for the lease timeout, before the cluster could have
// released them.
func TestLeaseLostWhenCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worlds(t, 3)
		ctx := t.Context()
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var holder *clustertest.Member
		var w *world.World
		for i, m := range c.Members {
			if m != l {
				holder, w = m, ws[i]
			}
		}
		lease, err := w.Acquire(ctx, "job", 1)
		if err != nil {
			t.Fatal(err)
		}
		<-time.After(5 * time.Second) // in touch: the lease holds
		select {
		case <-lease.Lost():
			t.Fatal("a lease was lost while its host was in touch")
		default:
		}
		c.Partition(holder)
		t0 := time.Now()
		select {
		case <-lease.Lost():
		case <-time.After(time.Minute):
			t.Fatal("a cut-off host kept its lease")
		}
		if d := time.Since(t0); d > world.DefaultLeaseTimeout+time.Second {
			t.Errorf("lost after %v, want about the %v lease timeout", d, world.DefaultLeaseTimeout)
		}
		c.Heal()
	})
}
