package raftnode

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A leader's contact with its cluster is the last time a quorum of the
// voters, itself included, answered it in its term. hashicorp/raft (1.7)
// keeps each follower's last contact inside its replication state and
// tells only when a heartbeat fails (FailedHeartbeatObservation, sent once
// the transport gives up: seconds on a silent network), so the node
// counts the answers itself, on raft's transport: every AppendEntries
// answered in the sender's term (raft heartbeats every follower at least
// every HeartbeatTimeout/10, besides replicating) and every vote granted
// (a new leader was in touch with a quorum when it won its election). An
// answer counts from when its request was sent.

// contacts records, by server, the newest request of a term that server
// answered, and the term this node last led in while it has heard of no
// later leader.
type contacts struct {
	mu   sync.Mutex
	last map[raft.ServerID]contact
	led  uint64
}

type contact struct {
	term uint64
	at   time.Time
}

// heard records that id answered, in term, a request sent at at.
func (c *contacts) heard(id raft.ServerID, term uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[raft.ServerID]contact{}
	}
	if old, ok := c.last[id]; ok && (old.term > term || old.term == term && !at.After(old.at)) {
		return
	}
	c.last[id] = contact{term: term, at: at}
}

// lead records that this node acts as the leader of term.
func (c *contacts) lead(term uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.led = max(c.led, term)
}

// follow records that another node leads in term: this node's own
// leadership, if of an earlier term, says nothing of its contact any more.
func (c *contacts) follow(term uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.led < term {
		c.led = 0
	}
}

// ledTerm returns the term this node last led in, 0 if it has heard of a
// later leader since (or never led).
func (c *contacts) ledTerm() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.led
}

// quorum returns when a quorum of voters last answered self in term:
// self counts as answering now. It is the zero time if no quorum has (or
// self is in no configuration with voters).
func (c *contacts) quorum(self raft.ServerID, term uint64, servers []raft.Server, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, last := range c.last {
		if last.term < term { // of no use for term or a later one
			delete(c.last, id)
		}
	}
	var times []time.Time
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		switch last, ok := c.last[s.ID]; {
		case s.ID == self:
			times = append(times, now)
		case ok && last.term == term:
			times = append(times, last.at)
		default:
			times = append(times, time.Time{})
		}
	}
	if len(times) == 0 {
		return time.Time{}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return b.Compare(a) }) // newest first
	return times[len(times)/2]
}

// answered returns, by server, when the newest request of term that the
// server answered was sent.
func (c *contacts) answered(term uint64) map[string]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]time.Time{}
	for id, last := range c.last {
		if last.term == term {
			out[string(id)] = last.at
		}
	}
	return out
}

// contactTransport is raft's transport with the answers this node gets
// recorded in contacts.
type contactTransport struct {
	raft.Transport
	c *contacts
}

func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest,
	resp *raft.AppendEntriesResponse) error {
	t.c.lead(args.Term) // only a leader sends them
	sent := time.Now()
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil && resp.Term == args.Term {
		t.c.heard(id, args.Term, sent)
	}
	return err
}

func (t *contactTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest,
	resp *raft.RequestVoteResponse) error {
	sent := time.Now()
	err := t.Transport.RequestVote(id, target, args, resp)
	if err == nil && resp.Granted {
		t.c.heard(id, args.Term, sent)
	}
	return err
}

// What raft asks of a transport besides raft.Transport, kept visible
// through the wrapper: raft closes a transport that can be closed when
// it shuts down, and runs pre-votes only on one that offers them.
type (
	contactCloser struct {
		*contactTransport
		raft.WithClose
	}
	contactPreVoter struct {
		*contactTransport
		raft.WithPreVote
	}
	contactCloserPreVoter struct {
		*contactTransport
		raft.WithClose
		raft.WithPreVote
	}
)

// withContacts wraps trans to record the answers it gets in c, keeping
// the optional interfaces raft looks for.
func withContacts(trans raft.Transport, c *contacts) raft.Transport {
	t := &contactTransport{Transport: trans, c: c}
	closer, canClose := trans.(raft.WithClose)
	preVoter, canPreVote := trans.(raft.WithPreVote)
	switch {
	case canClose && canPreVote:
		return &contactCloserPreVoter{t, closer, preVoter}
	case canClose:
		return &contactCloser{t, closer}
	case canPreVote:
		return &contactPreVoter{t, preVoter}
	}
	return t
}

// quorumContact returns when a quorum of the voters last answered this
// node as the leader of term.
func (n *Node) quorumContact(term uint64) time.Time {
	servers, err := n.Configuration()
	if err != nil {
		return time.Time{}
	}
	return n.contacts.quorum(raft.ServerID(n.cfg.NodeID), term, servers, time.Now())
}

// Answered returns, by server, when the newest request this node sent in
// term (as its leader, or a candidate) that the server answered in term
// was sent: the server was in touch with this node then.
func (n *Node) Answered(term uint64) map[string]time.Time {
	return n.contacts.answered(term)
}
