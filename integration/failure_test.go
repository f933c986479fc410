package integration

import (
	"fmt"
	"testing"
	"time"
)

// Five hosts: the leader is killed (SIGKILL, no leave); the four others
// elect a new leader among themselves, and a write through a follower
// succeeds and is read on every survivor.
func TestKilledLeaderIsReplacedAndAFollowerWrites(t *testing.T) {
	c := NewCluster(t, 5)
	c.StartJoined(c.Hosts)
	var leader *Host
	took := c.WaitFor("one cluster of five voters", formWait, func() (err error) {
		leader, err = Agreement(c.Hosts, 5)
		return err
	})
	Figure(t, "5 hosts joined with --join: time to one cluster of 5 voters", took)
	if err := leader.Put("before/kill", "1"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	leader.Kill()
	rest := Others(c.Hosts, leader)
	// A write made at once waits for the next leader rather than fail.
	early := make(chan error, 1)
	go func() { early <- rest[0].Put("during/election", "2") }()
	var next *Host
	c.WaitFor("a new leader among the survivors", electWait, func() error {
		name, err := commonLeader(rest)
		if err != nil {
			return err
		}
		next, err = ByName(rest, name)
		return err
	})
	Figure(t, "leader killed: time until the 4 others agree on a new leader", time.Since(start))
	if err := <-early; err != nil {
		t.Fatalf("a write through %s just after the leader was killed: %v", rest[0].Name, err)
	}
	Figure(t, "leader killed: a write made at once returned after", time.Since(start))

	follower := Others(rest, next)[0]
	if err := follower.Put("after/kill", follower.Name); err != nil {
		t.Fatalf("a write through follower %s after the leader was killed: %v", follower.Name, err)
	}
	c.WaitFor("both writes read on every survivor", settleWait, func() error {
		for k, v := range map[string]string{"before/kill": "1", "during/election": "2"} {
			if err := AllRead(rest, k, v); err != nil {
				return err
			}
		}
		return AllRead(rest, "after/kill", follower.Name)
	})
}

// commonLeader returns the name of the leader every host names, or an
// error if they do not all name one.
func commonLeader(hosts []*Host) (string, error) {
	var name string
	for i, h := range hosts {
		st, err := h.Status()
		if err != nil {
			return "", err
		}
		if st.Leader == "" || (i > 0 && st.Leader != name) {
			return "", fmt.Errorf("%s names leader %q, the hosts before it %q", h.Name, st.Leader, name)
		}
		name = st.Leader
	}
	return name, nil
}

// Four hosts with --voters 3: three voters and a warm spare. A voter
// killed (no leave) keeps its seat for the dead-node grace (30 s after
// gossip declares it dead), then the leader removes it and promotes the
// spare: three voters again, the three survivors.
func TestKilledVoterIsReplacedByASpare(t *testing.T) {
	t.Parallel() // mostly waiting out graces: alongside the other long waits
	c := NewCluster(t, 4)
	c.StartJoined(c.Hosts, "--voters", "3")
	var leader *Host
	took := c.WaitFor("three voters and a spare", formWait, func() (err error) {
		leader, err = Agreement(c.Hosts, 3)
		return err
	})
	Figure(t, "4 hosts, --voters 3: time to 3 voters and a spare", took)
	st, err := leader.Status()
	if err != nil {
		t.Fatal(err)
	}
	var spare, victim *Host
	for _, s := range st.Servers {
		h, err := ByName(c.Hosts, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case s.Suffrage == "nonvoter":
			spare = h
		case h != leader && victim == nil:
			victim = h
		}
	}
	if spare == nil || victim == nil {
		t.Fatalf("no spare, or no voter but the leader, among %+v", st.Servers)
	}

	victim.Kill()
	rest := Others(c.Hosts, victim)
	took = c.WaitFor("the spare promoted in the dead voter's seat", deadWait, func() error {
		_, err := Agreement(rest, 3)
		return err
	})
	Figure(t, "voter killed: time until a spare holds its seat", took)
	if took < 30*time.Second {
		t.Errorf("the dead voter lost its seat %v after it was killed, within the 30 s grace", took)
	}
	if err := spare.Put("promoted", spare.Name); err != nil {
		t.Fatalf("a write through the promoted spare: %v", err)
	}
	c.WaitFor("the write read on every survivor", settleWait, func() error {
		return AllRead(rest, "promoted", spare.Name)
	})
}

// Three hosts: the leader's agent is frozen (SIGSTOP, a stalled VM). The
// two others elect a new leader and take writes; thawed (SIGCONT), the old
// leader is one cluster with them again and reads what was written
// meanwhile.
func TestFrozenLeaderIsReplacedAndFollowsOnceThawed(t *testing.T) {
	c := NewCluster(t, 3)
	formThree(t, c)
	leader, err := Agreement(c.Hosts, 3)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	leader.Pause()
	rest := Others(c.Hosts, leader)
	c.WaitFor("a new leader among the two others", electWait, func() error {
		name, err := commonLeader(rest)
		if err == nil && name == leader.Name {
			err = fmt.Errorf("the others still name %s, frozen", name)
		}
		return err
	})
	Figure(t, "leader frozen: time until the 2 others agree on a new leader", time.Since(start))
	if err := rest[0].Put("frozen/meanwhile", "1"); err != nil {
		t.Fatalf("a write while the old leader is frozen: %v", err)
	}
	thawed := time.Now()
	leader.Resume()
	c.WaitFor("one cluster of three again", formWait, func() error {
		_, err := Agreement(c.Hosts, 3)
		return err
	})
	c.WaitFor("the thawed host reading the write it missed", settleWait, func() error {
		return AllRead([]*Host{leader}, "frozen/meanwhile", "1")
	})
	Figure(t, "leader thawed: time until all three agree and it reads what it missed", time.Since(thawed))
}
