package integration

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/internal/faultcheck"
)

// fault is one kind of fault a schedule injects.
type fault int

const (
	killLeader   fault = iota // kill -9, then a restart on the same data dir
	killFollower              // the same, of a follower
	freeze                    // SIGSTOP, then SIGCONT
	cutMinority               // a follower cut off from the others, then healed
	cutLeader                 // the leader cut off while its clients call it, until the others elect
	bridge                    // the leader and a follower cut from each other, both reaching the third
	readdress                 // kill -9, a new address, a restart: the host keeps its seat
	killInCut                 // a host cut off, and one of the others killed and started meanwhile
	nFaults
)

func (f fault) String() string {
	return [...]string{"kill -9 the leader", "kill -9 a follower", "freeze a host", "cut a follower off",
		"cut the leader off", "cut the leader from a follower (a bridge)", "move a host to a new address",
		"kill -9 a host during a cut"}[f]
}

// holds returns the shortest and the longest a fault of kind f is held.
// A kill, a freeze or a cut outlasts an election (1 to 2 s). The leader
// cut off is held after the others elected, and the bridge after the cut
// follower stood for election (the step waits for either), long enough
// for most calls of the cut side's clients, which wait up to
// faultOpTimeout for a leader, to end and be made again while the others
// write: held 1 to 2.5 s, a local read served as linearizable on a node
// that knew no leader went unseen. A host killed during a cut needs only
// to be down a while (no side can elect meanwhile), and a moved host's
// time down hardly matters: it takes 20 s to hold its seat again whatever
// it is.
func (f fault) holds() (lo, hi time.Duration) {
	switch f {
	case cutLeader, bridge:
		return 2500 * time.Millisecond, 4 * time.Second
	case killInCut:
		return 1 * time.Second, 2500 * time.Millisecond
	case readdress:
		return 500 * time.Millisecond, 1500 * time.Millisecond
	}
	return 2 * time.Second, 4 * time.Second
}

// step is one fault of a schedule and how long it lasts.
type step struct {
	fault fault
	host  int // the host a fault picks, among those it may
	hold  time.Duration
}

func (s step) String() string { return fmt.Sprintf("%v for %v", s.fault, s.hold) }

// planParts is how many schedules share one order of the kinds of fault.
const planParts = 3

// faultPlan returns the steps of seed's schedule. seed/planParts seeds an
// order of every kind of fault, and the schedule runs the seed%planParts-th
// of planParts parts of it: the planParts schedules of seeds
// planParts*b+0, +1 and so on run every kind once between them, and any
// one seed replays its own schedule alone. The hosts the steps pick and
// their holds are drawn from seed.
func faultPlan(seed uint64) []step {
	order := rand.New(rand.NewPCG(seed/planParts, 0)).Perm(int(nFaults))
	part := int(seed % planParts)
	kinds := order[part*len(order)/planParts : (part+1)*len(order)/planParts]
	rng := rand.New(rand.NewPCG(seed, 0))
	steps := make([]step, len(kinds))
	for i, k := range kinds {
		f := fault(k)
		lo, hi := f.holds()
		steps[i] = step{fault: f, host: rng.IntN(3), hold: lo + time.Duration(rng.Int64N(int64(hi-lo))).Round(time.Millisecond)}
	}
	return steps
}

// inject waits for the cluster to be whole (three voters agreeing on a
// leader), then applies s, holds it and undoes it, and waits for the
// cluster to be whole again.
func (c *Cluster) inject(s step) {
	c.t.Helper()
	leader := c.waitAgreement()
	h := c.Hosts[s.host]
	switch s.fault {
	case killLeader, cutLeader:
		h = leader
	case killFollower, cutMinority, bridge:
		if h == leader {
			h = Others(c.Hosts, leader)[0]
		}
	}
	c.t.Logf("fault: %v: %s (the leader is %s)", s, h.Name, leader.Name)
	start := time.Now()
	switch s.fault {
	case killLeader, killFollower:
		h.Kill()
		time.Sleep(s.hold) // the fault's length, drawn by the schedule
		h.Start()
	case freeze:
		h.Pause()
		time.Sleep(s.hold)
		h.Resume()
	case cutMinority:
		c.Partition(h)
		time.Sleep(s.hold)
		c.Heal()
	case cutLeader:
		c.cutLeaderOff(leader, s.hold)
	case bridge:
		c.cutBridge(leader, h, s.hold)
	case readdress:
		c.move(h, s.hold)
	case killInCut:
		c.killDuringCut(h, leader, s.hold)
	}
	undone := time.Now()
	c.waitAgreement()
	Figure(c.t, fmt.Sprintf("fault %q: time it lasted", s.fault), undone.Sub(start))
	Figure(c.t, fmt.Sprintf("fault %q: time after it until one cluster of three voters", s.fault), time.Since(undone))
}

// cutLeaderOff cuts the leader off, its clients calling it all along,
// until the others have elected a leader of their own, and for hold after:
// the old leader's writes fail or stay unknown and its linearizable reads
// fail, while the new leader takes writes.
func (c *Cluster) cutLeaderOff(leader *Host, hold time.Duration) {
	c.t.Helper()
	c.Partition(leader)
	others := Others(c.Hosts, leader)
	took := c.WaitFor("a leader among the others", electWait, func() error { return oneLeaderAmong(others) })
	Figure(c.t, "the leader cut off: time until the others elected one of theirs", took)
	time.Sleep(hold)
	c.Heal()
}

// cutBridge cuts the link between the leader and the follower h, both
// still reaching the third host, until h, hearing no leader, stands for
// election (while the third, which hears the leader, will not vote for
// it), and for hold after.
func (c *Cluster) cutBridge(leader, h *Host, hold time.Duration) {
	c.t.Helper()
	c.CutLink(leader, h)
	took := c.WaitFor(h.Name+" standing for election", electWait, func() error {
		st, err := h.Status()
		if err == nil && st.State != "Candidate" {
			err = fmt.Errorf("it is a %s, its leader %q", st.State, st.Leader)
		}
		return err
	})
	Figure(c.t, "the leader and a follower cut apart: time until the follower stood for election", took)
	time.Sleep(hold)
	c.Heal()
}

// move kills h, gives it a new address and starts it again after hold.
// It keeps its raft seat: it is a voter at its new address, among three
// voters, and no host removed it from raft meanwhile.
func (c *Cluster) move(h *Host, hold time.Duration) {
	c.t.Helper()
	removed := map[*Host]int{}
	for _, o := range c.Hosts {
		removed[o] = strings.Count(o.Log(), removalLine)
	}
	h.Kill()
	old := h.Addr
	c.NewAddr(h)
	// Its export names its address: the graph the agent reads says the
	// new one.
	h.WriteFile("share.yaml", shareGraph(h))
	time.Sleep(hold)
	h.Start()
	took := c.WaitFor(h.Name+" a voter at its new address, among three", deadWait, func() error {
		_, err := Agreement(c.Hosts, 3)
		return err
	})
	Figure(c.t, fmt.Sprintf("host killed and moved to %s: time from its start until it held its seat there", h.Addr), took)
	for _, o := range c.Hosts {
		if n := strings.Count(o.Log(), removalLine); n > removed[o] {
			c.t.Errorf("%s removed a server from raft while %s moved from %s: its seat was not kept", o.Name, h.Name, old)
		}
	}
}

// removalLine is what a leader logs when it removes a server from raft
// as gone.
const removalLine = "removing a server that is gone"

// killDuringCut cuts h off and, meanwhile, kills -9 another host (the
// leader, unless h leads), which leaves no side with a quorum, and starts
// it again after hold; once the two on the main side have elected a
// leader, it heals.
func (c *Cluster) killDuringCut(h, leader *Host, hold time.Duration) {
	c.t.Helper()
	victim := leader
	if victim == h {
		victim = Others(c.Hosts, h)[0]
	}
	c.Partition(h)
	victim.Kill()
	c.t.Logf("fault: %s killed while %s is cut off", victim.Name, h.Name)
	time.Sleep(hold)
	victim.Start()
	others := Others(c.Hosts, h)
	took := c.WaitFor("a leader on the main side", electWait, func() error { return oneLeaderAmong(others) })
	Figure(c.t, "a host killed and started during a cut: time from its start until its side elected", took)
	c.Heal()
}

// waitServed waits until each of the clients 0 to n-1 recording into rec
// has had a call answered (of known outcome) that it made after the
// faults: every host serves its clients again, a restarted or moved one
// through the same socket.
func (c *Cluster) waitServed(rec *recorder, n int) {
	c.t.Helper()
	since := rec.Now()
	took := c.WaitFor("answer to every client after the faults", settleWait, func() error {
		served := map[int]bool{}
		for _, op := range rec.History().Ops {
			if op.Call > since && op.Return != faultcheck.Unknown {
				served[op.Client] = true
			}
		}
		for id := range n {
			if !served[id] {
				return fmt.Errorf("client %d has had no call answered since the faults", id)
			}
		}
		return nil
	})
	Figure(c.t, "after the faults: time until every client was served again", took)
}

// oneLeaderAmong checks that hosts all name one leader, one of them.
func oneLeaderAmong(hosts []*Host) error {
	var leader string
	for _, h := range hosts {
		st, err := h.Status()
		if err != nil {
			return err
		}
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return fmt.Errorf("%s knows leader %q, the hosts before it %q", h.Name, st.Leader, leader)
		}
		leader = st.Leader
	}
	if !slices.ContainsFunc(hosts, func(h *Host) bool { return h.Name == leader }) {
		return fmt.Errorf("they follow %s, none of them", leader)
	}
	return nil
}

// The schedules of seeds planParts*b+0, +1... run every kind of fault
// once between them, each part has steps, and a seed's plan is the same
// whenever it is drawn (a replay runs the same steps). No namespaces: it
// runs anywhere.
func TestFaultPlanGroupsRunEveryKindOnce(t *testing.T) {
	for range 200 {
		group := rand.Uint64() % 333_333_333_333
		runs := map[fault]int{}
		for part := range uint64(planParts) {
			seed := group*planParts + part
			steps := faultPlan(seed)
			if len(steps) == 0 || !slices.Equal(steps, faultPlan(seed)) {
				t.Fatalf("seed %d: steps %v, then %v: want the same steps, at least one", seed, steps, faultPlan(seed))
			}
			for _, s := range steps {
				runs[s.fault]++
				if lo, hi := s.fault.holds(); s.hold < lo || s.hold > hi || s.host < 0 || s.host > 2 {
					t.Errorf("seed %d: step %v on host %d: want a hold within [%v, %v], a host 0 to 2", seed, s, s.host, lo, hi)
				}
			}
		}
		for f := range nFaults {
			if runs[f] != 1 {
				t.Fatalf("group %d: %q runs %d times in its %d schedules, want once", group, f, runs[f], planParts)
			}
		}
	}
}
