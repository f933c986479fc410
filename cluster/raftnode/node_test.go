package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func put(key, value string) []fsm.Command {
	return []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte(value)}}
}

// apply writes through a member, failing the test on error.
func apply(t *testing.T, m *clustertest.Member, key, value string) fsm.Result {
	t.Helper()
	res, err := m.Node().Apply(t.Context(), put(key, value))
	if err != nil {
		t.Fatalf("put %s on %s: %v", key, m.ID, err)
	}
	if len(res) != 1 || res[0].Err != "" {
		t.Fatalf("put %s on %s: %+v", key, m.ID, res)
	}
	return res[0]
}

func leader(t *testing.T, c *clustertest.Cluster) *clustertest.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// snapshotOf returns a member's whole key space as a map.
func snapshotOf(m *clustertest.Member) map[string]string {
	kvs, _ := m.FSM().List("", 0)
	out := map[string]string{}
	for _, kv := range kvs {
		out[kv.Key] = string(kv.Value)
	}
	return out
}

// A write on any node is visible on every node, linearizably.
func TestWriteOnAnyNodeVisibleEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		leader(t, c)
		for i, m := range c.Members {
			apply(t, m, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
		for _, m := range c.Members {
			if err := m.Node().Linearize(t.Context()); err != nil {
				t.Fatalf("%s: Linearize: %v", m.ID, err)
			}
			for i := range c.Members {
				kv, ok := m.FSM().Get(fmt.Sprintf("k%d", i))
				if !ok || string(kv.Value) != fmt.Sprintf("v%d", i) {
					t.Errorf("%s: k%d = %q, %t", m.ID, i, kv.Value, ok)
				}
			}
		}
	})
}

// watcher follows every change of one FSM the way the World does: events
// after the last revision seen, re-listing when told the history moved on.
type watcher struct {
	mu        sync.Mutex
	state     map[string]string
	lastRev   uint64
	compacted int
	disorder  error
}

func watch(ctx context.Context, f func() *fsm.FSM, w *watcher) {
	w.state = map[string]string{}
	var after uint64
	for ctx.Err() == nil {
		fs := f()
		changed := fs.Changed()
		evs, through, err := fs.Events(after, "", 1000)
		var ce *fsm.CompactedError
		if errors.As(err, &ce) {
			kvs, rev := fs.List("", 0)
			w.mu.Lock()
			w.compacted++
			clear(w.state)
			for _, kv := range kvs {
				w.state[kv.Key] = string(kv.Value)
			}
			w.lastRev = rev
			w.mu.Unlock()
			after = rev
			continue
		}
		w.mu.Lock()
		for _, e := range evs {
			if e.KV.ModRev <= w.lastRev && w.disorder == nil {
				w.disorder = fmt.Errorf("event for %s at revision %d after revision %d", e.KV.Key, e.KV.ModRev, w.lastRev)
			}
			w.lastRev = max(w.lastRev, e.KV.ModRev)
			if e.Type == fsm.EventPut {
				w.state[e.KV.Key] = string(e.KV.Value)
			} else {
				delete(w.state, e.KV.Key)
			}
		}
		w.mu.Unlock()
		after = through
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
			case <-changed:
			case <-time.After(50 * time.Millisecond): // the member may have restarted with a new FSM
			}
		}
	}
}

func (w *watcher) view() (map[string]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.state), w.disorder
}

// A watcher on one node sees every committed change, in order, through a
// leader kill; writes resume on the new leader.
func TestWatcherSeesEveryChangeThroughLeaderKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		l := leader(t, c)
		var watched *clustertest.Member
		for _, m := range c.Followers(l) {
			watched = m
		}
		ctx, cancel := context.WithCancel(t.Context())
		w := &watcher{}
		done := make(chan struct{})
		go func() { defer close(done); watch(ctx, watched.FSM, w) }()

		for i := range 50 {
			apply(t, c.Members[i%3], fmt.Sprintf("k%d", i%7), fmt.Sprint(i))
		}
		c.Kill(l)
		t0 := time.Now()
		nl := leader(t, c)
		t.Logf("new leader %s after %v", nl.ID, time.Since(t0))
		for i := 50; i < 100; i++ {
			apply(t, nl, fmt.Sprintf("k%d", i%7), fmt.Sprint(i))
		}
		if err := watched.Node().Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		cancel()
		<-done
		got, disorder := w.view()
		if disorder != nil {
			t.Error(disorder)
		}
		if want := snapshotOf(watched); !maps.Equal(got, want) {
			t.Errorf("watcher state %v, want %v", got, want)
		}
		if got["k0"] != "98" {
			t.Errorf("k0 = %q, want the last write 98", got["k0"])
		}
	})
}

// A follower cut off while the others write enough to snapshot and trim
// their logs catches up through a snapshot install; its watcher is told
// its history is gone, re-lists, and ends with every final value.
func TestLaggingFollowerSnapshotInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3, clustertest.WithHistory(64))
		l := leader(t, c)
		lag := c.Followers(l)[0]
		ctx, cancel := context.WithCancel(t.Context())
		w := &watcher{}
		done := make(chan struct{})
		go func() { defer close(done); watch(ctx, lag.FSM, w) }()

		c.Partition(lag)
		for i := range 400 {
			apply(t, l, fmt.Sprintf("key%d", i%50), fmt.Sprint(i))
		}
		<-time.After(time.Second) // fake time: let the leader snapshot and trim
		c.Heal()
		if err := lag.Node().Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		cancel()
		<-done
		got, disorder := w.view()
		if disorder != nil {
			t.Error(disorder)
		}
		if want := snapshotOf(l); !maps.Equal(got, want) || len(got) != 50 {
			t.Errorf("watcher has %d keys, leader %d; equal: %t", len(got), len(want), maps.Equal(got, want))
		}
		if w.compacted == 0 {
			t.Error("the watcher was never told its history was compacted")
		}
	})
}

// With the leader cut off, the majority elects a new leader and writes go
// on; the old leader, alone, cannot commit.
func TestMajorityWritesWhileLeaderPartitioned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		old := leader(t, c)
		apply(t, old, "before", "1")
		c.Partition(old)
		nl := leader(t, c)
		if nl == old {
			t.Fatal("the partitioned leader is still the majority's leader")
		}
		apply(t, nl, "during", "2")

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := old.Node().Apply(ctx, put("minority", "3"))
		cancel()
		if err == nil {
			t.Fatal("a write through the cut-off leader succeeded")
		}
		c.Heal()
		apply(t, nl, "after", "4")
		for _, m := range c.Members {
			if err := m.Node().Linearize(t.Context()); err != nil {
				t.Fatal(err)
			}
			s := snapshotOf(m)
			if s["before"] != "1" || s["during"] != "2" || s["after"] != "4" {
				t.Errorf("%s: %v", m.ID, s)
			}
			if _, ok := s["minority"]; ok && !errors.Is(err, raftnode.ErrAmbiguous) {
				t.Errorf("%s: the minority's write was applied: %v", m.ID, s)
			}
		}
	})
}

// A restarted node recovers its state from its stores and catches up.
func TestRestartRecoversState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		l := leader(t, c)
		for i := range 100 {
			apply(t, l, fmt.Sprintf("k%d", i), "x")
		}
		m := c.Followers(l)[0]
		c.Kill(m)
		apply(t, l, "while-down", "y")
		c.Restart(m)
		if err := m.Node().Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		s := snapshotOf(m)
		if len(s) != 101 || s["while-down"] != "y" {
			t.Errorf("restarted node has %d keys: %v", len(s), s["while-down"])
		}
	})
}
