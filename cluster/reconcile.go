package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// leaderState is what the reconciler remembers while this node leads. It is
// touched only by the reconcile goroutine.
type leaderState struct {
	term         uint64
	since        time.Time            // when this node began leading in term
	failedSince  map[string]time.Time // nodes that failed, and since when
	released     map[string]bool      // failed nodes whose slots were released
	healthySince map[string]time.Time // non-voters caught up, and since when
	health       map[string]bool      // raft servers up at the last pass
	exportsGone  map[string]time.Time // nodes gone for good that export, and since when
}

// reconcileLoop reconciles on every tick and membership event, and serves
// graceful leaves (which need the reconciler's view of health).
func (s *Server) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		s.loadClusterID()
		if s.node.IsLeader() {
			s.reconcile(ctx)
		} else {
			s.lead = leaderState{}
		}
		s.pruneGone(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		case req := <-s.leaveReqs:
			req.done <- s.handleLeave(req.ctx, req.id)
		}
	}
}

// ringMember is a node of this cluster that the ring says is up.
type ringMember struct {
	name string
	meta Meta
}

// leadIn starts the reconciler's leader state afresh when this node leads
// in a term it had not led in yet.
func (s *Server) leadIn(term uint64, now time.Time) {
	if s.lead.term != term || s.lead.failedSince == nil {
		s.lead = leaderState{term: term, since: now, failedSince: map[string]time.Time{},
			released: map[string]bool{}, healthySince: map[string]time.Time{}, health: map[string]bool{},
			exportsGone: map[string]time.Time{}}
	}
}

// reconcile makes the raft configuration follow the cluster. On the leader:
//
//   - a server alive in the ring but not in raft joins as a non-voter (and
//     a server whose cluster address changed is updated, this one too),
//     unless it is of another cluster, or started on raft state of its own
//     and does not say it is of this one;
//   - a non-voter that has stayed caught up for Stabilization is promoted
//     while fewer voters are up than wanted: the largest odd number up to
//     Voters that the servers up allow;
//   - a server is up if the ring shows it or it answers the leader's
//     progress call. One that is down has failed once memberlist reported
//     it dead (or left), or once it has been down for DeadServerGrace
//     while this node led (a new leader whose ring has not converged acts
//     on nobody meanwhile). A failed node's semaphore slots and ephemeral
//     keys are released after ReleaseGrace (at once if it left); it is
//     removed from raft after DeadServerGrace (at once if it left), but
//     never when the voters up would not be a quorum of the new
//     configuration.
//
// Every change is made only while this node still leads in the term the
// pass began in.
func (s *Server) reconcile(ctx context.Context) {
	term := s.node.raft.CurrentTerm()
	now := time.Now()
	s.leadIn(term, now)
	leading := func() bool { return s.node.IsLeader() && s.node.raft.CurrentTerm() == term }
	if s.ClusterID() == "" {
		s.writeClusterID(ctx)
	}
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	self := s.cfg.Raft.NodeID

	alive := s.aliveMembers()
	s.goneMu.Lock()
	gone, departed := maps.Clone(s.gone), maps.Clone(s.departed)
	s.goneMu.Unlock()

	progress := s.probe(ctx, servers)
	health := healthOf(self, servers, alive, progress)
	s.lead.health = health

	// Join new servers as non-voters; follow address changes.
	inRaft := map[string]raft.Server{}
	for _, srv := range servers {
		inRaft[string(srv.ID)] = srv
	}
	for _, name := range sortedKeys(alive) {
		m := alive[name]
		srv, ok := inRaft[name]
		switch {
		case !leading():
			return
		case !ok && (!departed[name].IsZero() || m.meta.Leaving):
			// Leaving: it asked to be removed and has not left the ring yet.
		case !ok && m.meta.ClusterID != "" && m.meta.ClusterID != s.ClusterID():
			// Of another cluster (the ring let it in before either knew).
		case !ok && m.meta.State && (m.meta.ClusterID == "" || s.ClusterID() == ""):
			// Started on raft state of a cluster it (or this node) cannot
			// name: it may be another cluster's, whose log raft would
			// take for this one's.
		case !ok:
			s.log.Info("adding a server as a non-voter", "server", name, "address", m.meta.RaftAddr)
			s.change(s.node.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout))
		case string(srv.Address) != m.meta.RaftAddr:
			// This node too: restarted on another address, it would
			// keep its old one in raft (and in graft status) for good.
			s.log.Info("a server's cluster address changed", "server", name, "from", srv.Address, "to", m.meta.RaftAddr)
			if srv.Suffrage == raft.Voter {
				s.change(s.node.raft.AddVoter(srv.ID, raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout))
			} else {
				s.change(s.node.raft.AddNonvoter(srv.ID, raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout))
			}
		}
	}

	// Promote caught-up non-voters while voters are short.
	// answering counts the voters that answered just now: only they make
	// a removal safe (the ring takes seconds to notice a death).
	upServers, upVoters, voters, answering := 0, 0, 0, 0
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			voters++
			if id := string(srv.ID); id == self || progress[id] != nil {
				answering++
			}
		}
		if health[string(srv.ID)] {
			upServers++
			if srv.Suffrage == raft.Voter {
				upVoters++
			}
		}
	}
	want := min(s.cfg.Voters, upServers)
	if want%2 == 0 {
		want--
	}
	leaderLast := s.node.raft.LastIndex()
	for _, srv := range servers {
		id := string(srv.ID)
		if srv.Suffrage == raft.Voter || id == self {
			continue
		}
		p := progress[id]
		if !health[id] || p == nil || p.Index+s.cfg.CatchupLag < leaderLast {
			delete(s.lead.healthySince, id)
			continue
		}
		if _, ok := s.lead.healthySince[id]; !ok {
			s.lead.healthySince[id] = now
		}
		if upVoters >= want || now.Sub(s.lead.healthySince[id]) < s.cfg.Stabilization {
			continue
		}
		if !leading() {
			return
		}
		s.log.Info("promoting a caught-up non-voter", "server", id, "voters_up", upVoters, "want", want)
		if s.change(s.node.raft.AddVoter(srv.ID, srv.Address, 0, s.cfg.Raft.ApplyTimeout)) {
			upVoters++
			voters++
			answering++
		}
	}

	// Failed servers: release what they held; remove them when safe.
	for _, srv := range servers {
		id := string(srv.ID)
		if health[id] {
			delete(s.lead.failedSince, id)
			delete(s.lead.released, id)
			continue
		}
		g, reported := gone[id]
		left := reported && g.left || !departed[id].IsZero()
		if _, ok := s.lead.failedSince[id]; !ok {
			switch {
			case reported:
				s.lead.failedSince[id] = g.at
			case now.Sub(s.lead.since) >= s.cfg.DeadServerGrace:
				// Down, never reported dead, after a full grace as leader.
				s.lead.failedSince[id] = now.Add(-s.cfg.DeadServerGrace)
			default:
				continue
			}
		}
		failedFor := now.Sub(s.lead.failedSince[id])
		if !s.lead.released[id] && (left || failedFor >= s.cfg.ReleaseGrace) {
			if !leading() {
				return
			}
			s.release(ctx, id, left)
		}
		if !left && failedFor < s.cfg.DeadServerGrace {
			continue
		}
		if srv.Suffrage == raft.Voter {
			if newVoters := voters - 1; answering < newVoters/2+1 {
				s.log.Warn("not removing a failed voter: the voters up would not be a quorum",
					"server", id, "voters", voters, "answering", answering)
				continue
			}
		}
		if !leading() {
			return
		}
		s.log.Info("removing a server that is gone", "server", id, "graceful", left, "failed_for", failedFor.Round(time.Millisecond))
		if s.change(s.node.raft.RemoveServer(srv.ID, 0, s.cfg.Raft.ApplyTimeout)) {
			delete(s.lead.failedSince, id)
			if srv.Suffrage == raft.Voter {
				voters--
			}
		}
	}

	// Nodes reported gone that raft no longer (or never) had may still hold
	// slots and ephemeral keys: release them too, once.
	for _, name := range sortedKeys(gone) {
		g := gone[name]
		if _, in := inRaft[name]; in || s.lead.released[name] {
			continue
		}
		if _, up := alive[name]; up {
			continue
		}
		if g.left || now.Sub(g.at) >= s.cfg.ReleaseGrace {
			if !leading() {
				return
			}
			s.release(ctx, name, g.left)
		}
	}
	s.withdrawGoneExports(ctx, inRaft, alive, now, leading)
}

// healthOf says which raft servers are up: this one, those the ring shows
// alive, and those that answered the leader's progress call.
func healthOf(self string, servers []raft.Server, alive map[string]ringMember, progress map[string]*Response) map[string]bool {
	health := map[string]bool{}
	for _, srv := range servers {
		id := string(srv.ID)
		_, inRing := alive[id]
		health[id] = id == self || inRing || progress[id] != nil
	}
	return health
}

// aliveMembers is the ring's members of this cluster.
func (s *Server) aliveMembers() map[string]ringMember {
	alive := map[string]ringMember{}
	for name, e := range s.ringView() {
		if e.meta.Cluster == s.cfg.ClusterName {
			alive[name] = ringMember{name: name, meta: e.meta}
		}
	}
	return alive
}

// probe asks every other raft server for its progress, all at once, each
// bounded by a heartbeat timeout. Servers that do not answer are absent
// from the result.
func (s *Server) probe(ctx context.Context, servers []raft.Server) map[string]*Response {
	out := map[string]*Response{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	now := time.Now()
	for _, srv := range servers {
		if string(srv.ID) == s.cfg.Raft.NodeID {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.HeartbeatTimeout)
			defer cancel()
			resp, err := s.node.rpc.Call(cctx, string(srv.Address), &Request{Op: rpcStats})
			if err != nil || resp.Code != codeOK {
				return
			}
			mu.Lock()
			out[string(srv.ID)] = resp
			mu.Unlock()
		})
	}
	wg.Wait()
	s.contactMu.Lock()
	for id := range out {
		s.contact[id] = now
	}
	s.contactMu.Unlock()
	return out
}

// change waits for a configuration change and logs a failure.
func (s *Server) change(f raft.IndexFuture) bool {
	if err := f.Error(); err != nil {
		s.log.Warn("raft configuration change failed", "err", err)
		return false
	}
	return true
}

// release releases the semaphore slots and ephemeral keys of a node that
// failed or left, through this leader only: an ex-leader's stale view is
// never forwarded.
func (s *Server) release(ctx context.Context, name string, left bool) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
	defer cancel()
	if _, err := s.node.applyAsLeader(cctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: name}}); err != nil {
		s.log.Warn("could not release a gone node's semaphore slots and ephemeral keys", "server", name, "graceful", left, "err", err)
		return
	}
	s.lead.released[name] = true
	if left {
		s.log.Info("released the semaphore slots and ephemeral keys of a node that left", "server", name)
	} else {
		s.log.Info("released a failed node's semaphore slots and ephemeral keys", "server", name)
	}
}

// handleLeave removes a server that leaves gracefully, unless the voters
// up without it would not be a quorum of the new configuration. Who is up
// is looked at now (a leader that took over a moment ago, handed
// leadership by the leaver, has no view of its own yet), and only a
// server that answers counts: the ring takes seconds to notice a death,
// and removing a voter on the word of a ring that has not noticed yet
// could leave the new configuration without a quorum.
func (s *Server) handleLeave(ctx context.Context, id string) error {
	if !s.node.IsLeader() {
		return fmt.Errorf("not the leader")
	}
	f := s.node.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	health := healthOf(s.cfg.Raft.NodeID, servers, nil, s.probe(ctx, servers))
	voters, upVoters, member := 0, 0, false
	for _, srv := range servers {
		sid := string(srv.ID)
		if sid == id {
			member = true
			if srv.Suffrage == raft.Voter {
				continue
			}
		}
		if srv.Suffrage != raft.Voter {
			continue
		}
		voters++
		if health[sid] {
			upVoters++
		}
	}
	if !member {
		return nil
	}
	if voters == 0 || upVoters < voters/2+1 {
		s.log.Warn("refusing a graceful leave", "server", id, "voters_after", voters, "up", upVoters)
		return fmt.Errorf("cluster: leave of %s: %w", id, errLeaveRefused)
	}
	s.goneMu.Lock()
	s.departed[id] = time.Now() // until it leaves the ring, do not add it back
	s.goneMu.Unlock()
	if _, err := s.node.applyAsLeader(ctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: id}}); err != nil {
		return err
	}
	// Released: once it is gone from the ring, the reconciler need not
	// release it again.
	s.leadIn(s.node.raft.CurrentTerm(), time.Now())
	s.lead.released[id] = true
	if err := s.node.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.Raft.ApplyTimeout).Error(); err != nil {
		return err
	}
	s.log.Info("a server left gracefully", "server", id)
	s.kick()
	return nil
}

// pruneGone forgets nodes gone (or departed) for an hour that raft no
// longer has.
func (s *Server) pruneGone(now time.Time) {
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	inRaft := map[string]bool{}
	for _, srv := range f.Configuration().Servers {
		inRaft[string(srv.ID)] = true
	}
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	for name, g := range s.gone {
		if !inRaft[name] && now.Sub(g.at) > time.Hour {
			delete(s.gone, name)
		}
	}
	for name, at := range s.departed {
		if now.Sub(at) > time.Hour {
			delete(s.departed, name)
		}
	}
}

// writeClusterID gives a freshly bootstrapped cluster its ID.
func (s *Server) writeClusterID(ctx context.Context) {
	id, err := newClusterID()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
	defer cancel()
	_, err = s.node.applyAsLeader(cctx, []fsm.Command{{Op: fsm.OpTxn,
		Compares: []fsm.Compare{{Target: fsm.CompareAbsent, Key: clusterIDKey}},
		Then:     []fsm.Command{{Op: fsm.OpPut, Key: clusterIDKey, Value: []byte(id)}}}})
	if err != nil {
		s.log.Warn("could not record the cluster ID", "err", err)
		return
	}
	if err := s.node.WaitApplied(cctx, s.node.raft.LastIndex()); err == nil {
		s.loadClusterID()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
