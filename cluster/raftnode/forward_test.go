package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// firstWins is a write whose second application would be seen: it puts
// "first" into an absent key, "second" into a present one.
func firstWins(key string) []fsm.Command {
	return []fsm.Command{{Op: fsm.OpTxn,
		Compares: []fsm.Compare{{Target: fsm.CompareAbsent, Key: key}},
		Then:     []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte("first")}},
		Else:     []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte("second")}}}}
}

// forwarding starts a cluster of three and returns it, its leader, and a
// follower that has forwarded a write to that leader (so it knows it).
func forwarding(t *testing.T) (*clustertest.Cluster, *clustertest.Member, *clustertest.Member) {
	t.Helper()
	c := clustertest.New(t, 3)
	l := leader(t, c)
	f := c.Followers(l)[0]
	apply(t, f, "warm", "1")
	return c, l, f
}

// appliedOnce checks that every member holds key = "first" once the
// cluster is whole again.
func appliedOnce(t *testing.T, c *clustertest.Cluster, key string) {
	t.Helper()
	c.Heal()
	for _, m := range c.Members {
		if err := m.Node().Linearize(t.Context()); err != nil {
			t.Fatalf("%s: %v", m.ID, err)
		}
		if kv, ok := m.FSM().Get(key); !ok || string(kv.Value) != "first" {
			t.Errorf("%s holds %s = %q (present %v), want \"first\": the write applied %s", m.ID, key, kv.Value, ok,
				map[bool]string{true: "twice", false: "never"}[ok])
		}
	}
}

// A write forwarded to a leader that stops answering (SIGSTOPped, or cut
// off by a firewall that drops packets) waited the whole forward timeout
// and failed with 504, although a new leader was elected in a fraction of
// it. The follower notices the new term, learns from its own replica that
// the write was never applied, and sends it to the new leader: the gap
// follows the election, and the write applies once.
func TestWriteToFrozenLeaderGoesToTheNewLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l, f := forwarding(t)
		c.Freeze(l)
		start := time.Now()
		res, err := f.Node().Apply(t.Context(), firstWins("k"))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("a write through %s after the leader froze: %v (after %v)", f.ID, err, took)
		}
		t.Logf("the write took %v with the leader frozen", took)
		if !res[0].OK {
			t.Errorf("the write found the key present: %+v", res)
		}
		if limit := raftnode.TestConfig().ForwardTimeout / 2; took > limit {
			t.Errorf("the write took %v, want well under the forward timeout (%v): about an election", took, limit)
		}
		appliedOnce(t, c, "k")
	})
}

// When the leader applies a forwarded write but its answer is lost and it
// is then cut off, the write applied: the follower learns so, with the
// results, from its own replica, instead of reporting an unknown outcome
// or sending it again.
func TestWriteWhoseAnswerIsLostIsKnownApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l, f := forwarding(t)
		c.LoseAnswers(l)
		type outcome struct {
			res []fsm.Result
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := f.Node().Apply(context.Background(), firstWins("k"))
			done <- outcome{res, err}
		}()
		for {
			if _, ok := l.FSM().Get("k"); ok {
				break
			}
			<-time.After(5 * time.Millisecond)
		}
		c.Freeze(l)
		o := <-done
		if o.err != nil {
			t.Fatalf("the write, applied by the leader before it froze: %v", o.err)
		}
		if len(o.res) != 1 || !o.res[0].OK {
			t.Errorf("results %+v, want the first branch taken", o.res)
		}
		appliedOnce(t, c, "k")
	})
}

// A write whose leader refused every connection failed with a misleading
// 503 "no leader" while a leader was up: the error says the leader could
// not be reached, and why.
func TestWriteToUnreachableLeaderSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l, f := forwarding(t)
		c.RefuseRPCs(l)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := f.Node().Apply(ctx, put("k", "v"))
		if !errors.Is(err, raftnode.ErrLeaderUnreachable) || errors.Is(err, raftnode.ErrNoLeader) ||
			!strings.Contains(err.Error(), "too many connections handshaking") || !strings.Contains(err.Error(), l.ID) {
			t.Errorf("write with the leader refusing RPCs: %v; want ErrLeaderUnreachable naming %s and the refusal", err, l.ID)
		}
		c.Heal()
	})
}

// Writes queued behind the four forwards in flight when the leader froze
// were sent to the frozen leader, fenced for the new term, after the
// election; nothing settled them, and they failed after the whole forward
// timeout. Every one of many concurrent writes follows the election.
func TestConcurrentWritesToFrozenLeaderFollowTheElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l, f := forwarding(t)
		c.Freeze(l)
		const writers = 12
		errs := make(chan error, writers)
		start := time.Now()
		for i := range writers {
			go func() {
				_, err := f.Node().Apply(context.Background(), firstWins(fmt.Sprint("k", i)))
				errs <- err
			}()
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Errorf("a concurrent write through %s after the leader froze: %v", f.ID, err)
			}
		}
		took := time.Since(start)
		t.Logf("%d concurrent writes took %v with the leader frozen", writers, took)
		if limit := raftnode.TestConfig().ForwardTimeout / 2; took > limit {
			t.Errorf("the writes took %v, want well under the forward timeout (%v)", took, limit)
		}
		for i := range writers {
			appliedOnce(t, c, fmt.Sprint("k", i))
		}
	})
}

// A write of as many commands as an entry holds left no room for the
// forward's fence: it was never sent and kept its forwarding slot, and
// after four of them the follower forwarded nothing. The limits of a write
// are the same on every node, and such a write fails at once without
// wedging the forwarder.
func TestForwardedMaxBatchWriteDoesNotWedgeForwarder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		l := leader(t, c)
		f := c.Followers(l)[0]
		big := make([]fsm.Command, fsm.MaxBatch)
		for i := range big {
			big[i] = fsm.Command{Op: fsm.OpPut, Key: fmt.Sprint("b", i), Value: []byte("v")}
		}
		for _, m := range []*clustertest.Member{l, f} {
			if _, err := m.Node().Apply(t.Context(), big); !errors.Is(err, fsm.ErrTooLarge) {
				t.Errorf("a write of %d commands on %s: %v, want ErrTooLarge", len(big), m.ID, err)
			}
		}
		for range 4 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_, err := f.Node().Apply(ctx, big[:fsm.MaxBatch-1])
			cancel()
			if err != nil {
				t.Errorf("a write of %d commands through %s: %v", fsm.MaxBatch-1, f.ID, err)
			}
		}
		apply(t, f, "small", "1")
		if _, err := f.Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpFence, Term: 1}}); err == nil {
			t.Error("a caller's own fence was taken")
		}
	})
}

// A write on a leader that lost its leadership before the entry committed
// (here it was cut off) ended with "write outcome unknown" at once. The
// leader fences its own writes too: once it hears of the new leader, its
// replica shows the write was never applied, and it goes to the new
// leader, once.
func TestWriteOnLeaderThatLosesLeadershipIsResolved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		l := leader(t, c)
		c.Partition(l)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := l.Node().Apply(ctx, firstWins("k"))
			done <- err
		}()
		for l.Node().IsLeader() {
			select {
			case err := <-done:
				t.Fatalf("the write on the cut-off leader ended while it still led: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		if _, err := c.Leader(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.Heal()
		if err := <-done; err != nil {
			t.Fatalf("the write on the leader that lost its leadership: %v", err)
		}
		appliedOnce(t, c, "k")
	})
}
