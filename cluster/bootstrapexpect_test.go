package cluster

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/cluster/raftnode"
)

// The bootstrap-expect decision, on rings made by hand. The node deciding
// is "a", of cluster "graft".

// fresh is the metadata of a fresh server expecting expect, naming set.
func fresh(id string, expect int, set string) Meta {
	return Meta{Cluster: "graft", RaftAddr: id + ":7000", Expect: expect, ExpectSet: set}
}

func servers(ids ...string) []raftnode.RaftServer {
	var out []raftnode.RaftServer
	for _, id := range ids {
		out = append(out, raftnode.RaftServer{ID: id, Address: id + ":7000"})
	}
	return out
}

func TestDecideExpect(t *testing.T) {
	abc := setHash(servers("a", "b", "c"))
	ab := setHash(servers("a", "b"))
	bound := fresh("x", 3, "")
	bound.ClusterID = "c1"
	otherName := fresh("x", 3, "")
	otherName.Cluster = "other"
	for _, r := range []struct {
		name    string
		expect  int
		ring    map[string]Meta
		tooMany bool
		want    expectStep
		set     string // the set to gossip, "" for none
		member  string // expectExisting: the member seen
	}{
		{name: "fewer servers than expected wait", want: expectWait,
			ring: map[string]Meta{"a": fresh("a", 3, ""), "b": fresh("b", 3, "")}},
		{name: "the expected servers not all naming the set yet: gossip it and wait", want: expectWait, set: abc,
			ring: map[string]Meta{"a": fresh("a", 3, ""), "b": fresh("b", 3, abc), "c": fresh("c", 3, "")}},
		{name: "the expected servers all naming the set bootstrap", want: expectBootstrap, set: abc,
			ring: map[string]Meta{"a": fresh("a", 3, abc), "b": fresh("b", 3, abc), "c": fresh("c", 3, abc)}},
		{name: "this node's own set as the ring last heard it is not waited for", want: expectBootstrap, set: abc,
			ring: map[string]Meta{"a": fresh("a", 3, ""), "b": fresh("b", 3, abc), "c": fresh("c", 3, abc)}},
		{name: "a server naming another set holds the bootstrap", want: expectWait, set: abc,
			ring: map[string]Meta{"a": fresh("a", 3, abc), "b": fresh("b", 3, ab), "c": fresh("c", 3, abc)}},
		{name: "more servers than expected never bootstrap", expect: 2, want: expectTooMany,
			ring: map[string]Meta{"a": fresh("a", 2, ab), "b": fresh("b", 2, ab), "c": fresh("c", 2, "")}},
		{name: "more servers than expected are reported once", expect: 2, want: expectWait, tooMany: true,
			ring: map[string]Meta{"a": fresh("a", 2, ab), "b": fresh("b", 2, ab), "c": fresh("c", 2, "")}},
		{name: "once more were seen, the expected count agreeing does not bootstrap", expect: 2, want: expectWait, tooMany: true,
			ring: map[string]Meta{"a": fresh("a", 2, ab), "b": fresh("b", 2, ab)}},
		{name: "a member of a bootstrapped cluster in the ring: wait to be added", want: expectExisting, member: "x",
			ring: map[string]Meta{"a": fresh("a", 3, abc), "b": fresh("b", 3, abc), "c": fresh("c", 3, abc), "x": bound}},
		{name: "nodes of another cluster name do not count", want: expectBootstrap, set: abc,
			ring: map[string]Meta{"a": fresh("a", 3, abc), "b": fresh("b", 3, abc), "c": fresh("c", 3, abc), "x": otherName}},
		{name: "servers expecting another count do not count", want: expectBootstrap, set: abc,
			ring: map[string]Meta{"a": fresh("a", 3, abc), "b": fresh("b", 3, abc), "c": fresh("c", 3, abc), "x": fresh("x", 5, "")}},
	} {
		t.Run(r.name, func(t *testing.T) {
			expect := r.expect
			if expect == 0 {
				expect = 3
			}
			d := decideExpect(expectView{self: "a", clusterName: "graft", expect: expect, ring: r.ring, tooMany: r.tooMany})
			if d.step != r.want || d.set != r.set || d.member != r.member {
				t.Errorf("step %d, set %q, member %q; want %d, %q, %q", d.step, d.set, d.member, r.want, r.set, r.member)
			}
			if d.step == expectBootstrap && !slices.Equal(d.servers, servers("a", "b", "c")) {
				t.Errorf("bootstraps %v", d.servers)
			}
		})
	}
}

// A kick (a change in the ring) must reach every loop that waits for one,
// even a loop busy when it came. The reconciler and the bootstrap-expect
// loop shared one wake channel of capacity 1: the one that waited took the
// kick, and the one busy found none when it came back to wait, though the
// ring had changed since it last looked.
func TestBootstrapKickNotEatenByReconcileKick(t *testing.T) {
	for _, r := range []struct {
		name          string
		waits, busy   func(*Server) chan struct{}
		waitsN, busyN string
	}{
		{"the reconciler waits, the bootstrap-expect loop is busy",
			func(s *Server) chan struct{} { return s.reconcileWake }, func(s *Server) chan struct{} { return s.expectWake },
			"reconciler", "bootstrap-expect loop"},
		{"the bootstrap-expect loop waits, the reconciler is busy",
			func(s *Server) chan struct{} { return s.expectWake }, func(s *Server) chan struct{} { return s.reconcileWake },
			"bootstrap-expect loop", "reconciler"},
	} {
		t.Run(r.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &Server{}
				s.makeWakes()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				// The waiting loop takes every kick on its channel as it
				// comes, as the real loops do between passes.
				woke := 0
				go func() {
					for {
						select {
						case <-ctx.Done():
							return
						case <-r.waits(s):
							woke++
						}
					}
				}()
				synctest.Wait()
				s.kick()
				synctest.Wait()
				if woke != 1 {
					t.Errorf("the %s woke %d times for one kick, want once", r.waitsN, woke)
				}
				select {
				case <-r.busy(s):
				default:
					t.Errorf("the %s, busy during the kick, finds no wake when it comes back to wait: the %s ate it", r.busyN, r.waitsN)
				}
			})
		})
	}
}
