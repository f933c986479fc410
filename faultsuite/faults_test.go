package faultsuite

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/graftcm/graft/internal/faultcheck"
)

// releaseBound is how soon after a holder's death the cluster must have
// freed its semaphore slots at the test timings: README's "When the holder
// dies" documents 8 to 10 s at production timings, where the engine's
// test fails past 12 s, and 0.53 to 0.68 s at these, a tenth; a tenth of
// 12 s. (100 schedules measured at most 0.85 s.)
const releaseBound = 1200 * time.Millisecond

// faultKind is one kind of step of a schedule.
type faultKind int

const (
	calm faultKind = iota
	killLeader
	killFollower
	cutLeader      // the leader alone on the minority side
	cutFollower    // a follower alone: the leader keeps the majority
	bridge         // the leader and a follower cut apart; the third links both
	freezeLeader   // the leader stops answering, as if stopped (SIGSTOP)
	freezeFollower // a follower stops answering
)

var kindNames = [...]string{"calm", "kill-leader", "kill-follower", "cut-leader", "cut-follower", "bridge",
	"freeze-leader", "freeze-follower"}

func (k faultKind) String() string { return kindNames[k] }

// step is one fault, held for d, then repaired (a killed node restarted,
// a cut healed).
type step struct {
	kind faultKind
	d    time.Duration
}

func (s step) String() string { return fmt.Sprintf("%s %v", s.kind, s.d) }

// plan draws a schedule: steps until 2 to 4 s of them. A kill lasts past
// releaseBound, so that the cluster must have freed the dead node's
// slots before it comes back; a cut, a bridge or a freeze lasts 0.3 to
// 1.2 s, shorter or longer than the time the others take to declare a
// node dead.
func plan(rng *rand.Rand) []step {
	total := 2*time.Second + dur(rng, 2*time.Second)
	var steps []step
	for sum := time.Duration(0); sum < total; {
		s := step{kind: faultKind(rng.IntN(len(kindNames)))}
		switch s.kind {
		case calm:
			s.d = 200*time.Millisecond + dur(rng, 300*time.Millisecond)
		case killLeader, killFollower:
			s.d = releaseBound + 200*time.Millisecond + dur(rng, 400*time.Millisecond)
		default:
			s.d = 300*time.Millisecond + dur(rng, 900*time.Millisecond)
		}
		steps = append(steps, s)
		sum += s.d
	}
	return steps
}

// dur returns a random duration in [0, d).
func dur(rng *rand.Rand, d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d))) }

// victim picks the step's node: the leader, or one of the followers.
func (h *harness) victim(s step, rng *rand.Rand) (*node, error) {
	l := h.leader()
	if l == nil {
		return nil, fmt.Errorf("no leader for %s", s)
	}
	if s.kind == killLeader || s.kind == cutLeader || s.kind == freezeLeader {
		return l, nil
	}
	var fs []*node
	for _, n := range h.nodes {
		if n != l {
			fs = append(fs, n)
		}
	}
	return fs[rng.IntN(len(fs))], nil
}

// run waits for a healthy cluster, then applies the step, holds it and
// repairs it. A kill reports what became of the dead node's slots.
func (h *harness) run(s step, rng *rand.Rand) (*faultcheck.Kill, error) {
	if err := h.waitHealthy(); err != nil {
		return nil, fmt.Errorf("before %s: %w", s, err)
	}
	if s.kind == calm {
		time.Sleep(s.d)
		return nil, nil
	}
	n, err := h.victim(s, rng)
	if err != nil {
		return nil, err
	}
	// The clients' clock, to place the step in a violation's history.
	h.t.Logf("%v on %s from %d", s, n.slot.ID, h.rec.Now())
	defer func() { h.t.Logf("%v on %s until %d", s, n.slot.ID, h.rec.Now()) }()
	switch s.kind {
	case cutLeader, cutFollower:
		h.f.Partition(n.slot)
	case freezeLeader, freezeFollower:
		h.f.Freeze(n.slot)
	case bridge:
		if l := h.leader(); l != nil && l != n {
			h.f.CutLink(l.slot, n.slot)
		}
	}
	if s.kind != killLeader && s.kind != killFollower {
		time.Sleep(s.d)
		h.f.Heal()
		return nil, nil
	}
	k := &faultcheck.Kill{Node: n.slot.ID, Tokens: h.tokensOf(n)}
	base := h.lastIndex()
	// A crash silences the node at once. Closing an in-process server
	// is no crash (raft's Shutdown of a leader went on for 3.8 s of
	// the fake clock, waiting on its replication), so the node is cut
	// off first, and closed meanwhile.
	h.f.Partition(n.slot)
	at := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		h.kill(n)
	}()
	stalled := time.Duration(-1)
	for time.Since(at) < s.d {
		if stalled < 0 && h.committedSince(n, base) {
			stalled = time.Since(at)
		}
		if h.freed(n) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	k.Freed, k.After, k.Stalled = h.freed(n), time.Since(at), stalled
	if stalled < 0 {
		k.Stalled = k.After
	}
	<-closed
	h.f.Heal()
	time.Sleep(s.d - time.Since(at))
	h.restart(n)
	if len(k.Tokens) == 0 {
		return nil, nil // it held nothing to free
	}
	return k, nil
}

// tokensOf returns the tokens of the slots any running node's state says
// n holds.
func (h *harness) tokensOf(n *node) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, o := range h.nodes {
		if o.slot.Server() == nil {
			continue
		}
		for _, s := range semas {
			st, _ := o.slot.FSM().Sema(s.id)
			for _, sl := range st.Holders {
				if sl.Node == n.slot.ID && !seen[sl.Token] {
					seen[sl.Token] = true
					out = append(out, sl.Token)
				}
			}
		}
	}
	return out
}

// lastIndex returns the highest raft log index any node's store holds.
func (h *harness) lastIndex() uint64 {
	var last uint64
	for _, o := range h.nodes {
		if l := o.slot.Log(); len(l) > 0 {
			last = max(last, l[len(l)-1].Index)
		}
	}
	return last
}

// committedSince reports whether a leader other than n has applied an
// entry beyond base: one appended after n was killed, so committed by the
// others.
func (h *harness) committedSince(n *node, base uint64) bool {
	l := h.leader()
	return l != nil && l != n && l.slot.FSM().Applied() > base
}

// freed reports whether the current leader's state holds no slot of n.
func (h *harness) freed(n *node) bool {
	l := h.leader()
	if l == nil || l == n {
		return false
	}
	for _, s := range semas {
		st, _ := l.slot.FSM().Sema(s.id)
		for _, sl := range st.Holders {
			if sl.Node == n.slot.ID {
				return false
			}
		}
	}
	return true
}
