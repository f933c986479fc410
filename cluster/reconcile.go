package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

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
		case <-s.reconcileWake:
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
	s.lead = s.lead.in(term, now)
}

// reconcile makes the raft configuration follow the cluster (see plan):
// it takes a view of the cluster, plans, and executes the plan. Every
// change is made only while this node still leads in the term the pass
// began in.
func (s *Server) reconcile(ctx context.Context) {
	term := s.node.Term()
	now := time.Now()
	leading := func() bool { return s.node.IsLeader() && s.node.Term() == term }
	if s.ClusterID() == "" {
		s.writeClusterID(ctx)
	}
	v, ok := s.gather(ctx, term, now)
	if !ok {
		s.leadIn(term, now)
		return
	}
	s.lead = execute(v, leading, func(a action) bool { return s.do(ctx, a) })
}

// gather takes the view a pass plans on. It probes the other raft servers
// for their progress. It fails when the raft configuration cannot be read.
func (s *Server) gather(ctx context.Context, term uint64, now time.Time) (view, bool) {
	servers, err := s.node.Configuration()
	if err != nil {
		return view{}, false
	}
	alive := s.aliveMembers()
	s.goneMu.Lock()
	gone, departed := maps.Clone(s.gone), maps.Clone(s.departed)
	s.goneMu.Unlock()
	progress := s.probe(ctx, servers)
	return view{leader: true, term: term, now: now, self: s.cfg.Raft.NodeID, clusterID: s.ClusterID(),
		servers: servers, lastIndex: s.node.LastIndex(), progress: progress, answered: s.node.Answered(term),
		alive: alive, gone: gone, departed: departed, exporting: exportingNodes(s.node.FSM()), lead: s.lead,
		cfg: s.cfg.planConfig()}, true
}

// execute carries out plan(v) in order, each action only while leading()
// holds: the pass ends at the first action it does not. do performs an
// action and reports whether it succeeded. When a promotion or a removal
// fails, the rest of the pass is planned anew without it (the decisions
// after it counted on it), from the action after it on: the plan before
// it does not depend on it. execute returns the state to remember.
func execute(v view, leading func() bool, do func(action) bool) leaderState {
	p := plan(v)
	var done []action
	for i := 0; i < len(p.actions); i++ {
		a := p.actions[i]
		if !leading() {
			break
		}
		switch {
		case do(a):
			done = append(done, a)
		case a.counted():
			v.failed = maps.Clone(v.failed)
			if v.failed == nil {
				v.failed = map[actionKey]bool{}
			}
			v.failed[a.key()] = true
			p = plan(v)
			i-- // the failed action is not in the new plan: the next one is at i
		}
	}
	for _, a := range done {
		recordDone(p.lead, a)
	}
	return p.lead
}

// do performs one action of a pass, logging it as the old, inline
// reconciler did, and reports whether it succeeded.
func (s *Server) do(ctx context.Context, a action) bool {
	timeout := s.cfg.Raft.ApplyTimeout
	id, addr := a.server, a.addr
	switch a.kind {
	case actNote:
		s.log.Log(ctx, a.level(), a.reason, a.attrs...)
		return true
	case actRelease:
		return s.release(ctx, a)
	case actWithdraw:
		return s.withdrawExports(ctx, a)
	}
	s.log.Info(a.reason, a.attrs...)
	switch a.kind {
	case actAddNonvoter:
		return s.change(s.node.AddNonvoter(id, addr, timeout))
	case actReaddress:
		if a.voter {
			return s.change(s.node.AddVoter(id, addr, timeout))
		}
		return s.change(s.node.AddNonvoter(id, addr, timeout))
	case actPromote:
		return s.change(s.node.AddVoter(id, addr, timeout))
	case actRemove:
		return s.change(s.node.RemoveServer(id, timeout))
	}
	s.log.Error("unknown reconcile action", "action", a.kind.String(), "server", a.server)
	return false
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
// from the result; those that do map to their last log index.
func (s *Server) probe(ctx context.Context, servers []raft.Server) map[string]uint64 {
	out := map[string]uint64{}
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
			resp, err := s.node.Call(cctx, string(srv.Address), &transport.Request{Op: transport.OpStats})
			if err != nil || resp.Code != transport.CodeOK {
				return
			}
			mu.Lock()
			out[string(srv.ID)] = resp.Index
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

// change logs a configuration change's failure and reports success.
func (s *Server) change(err error) bool {
	if err != nil {
		s.log.Warn("raft configuration change failed", "err", err)
		return false
	}
	return true
}

// release releases the semaphore slots and ephemeral keys of a node that
// failed or left (a, an actRelease), through this leader only: an
// ex-leader's stale view is never forwarded. It reports whether it did.
func (s *Server) release(ctx context.Context, a action) bool {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
	defer cancel()
	if _, err := s.node.ApplyAsLeader(cctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: a.server}}); err != nil {
		s.log.Warn("could not release a gone node's semaphore slots and ephemeral keys", "server", a.server, "graceful", a.left, "err", err)
		return false
	}
	s.log.Info(a.reason, a.attrs...)
	return true
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
	servers, err := s.node.Configuration()
	if err != nil {
		return err
	}
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
	if _, err := s.node.ApplyAsLeader(ctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: id}}); err != nil {
		return err
	}
	// Released: once it is gone from the ring, the reconciler need not
	// release it again.
	s.leadIn(s.node.Term(), time.Now())
	s.lead.released[id] = true
	if err := s.node.RemoveServer(id, s.cfg.Raft.ApplyTimeout); err != nil {
		return err
	}
	s.log.Info("a server left gracefully", "server", id)
	s.kick()
	return nil
}

// pruneGone forgets nodes gone (or departed) for an hour that raft no
// longer has.
func (s *Server) pruneGone(now time.Time) {
	servers, err := s.node.Configuration()
	if err != nil {
		return
	}
	inRaft := map[string]bool{}
	for _, srv := range servers {
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
	_, err = s.node.ApplyAsLeader(cctx, []fsm.Command{{Op: fsm.OpTxn,
		Compares: []fsm.Compare{{Target: fsm.CompareAbsent, Key: raftnode.ClusterIDKey}},
		Then:     []fsm.Command{{Op: fsm.OpPut, Key: raftnode.ClusterIDKey, Value: []byte(id)}}}})
	if err != nil {
		s.log.Warn("could not record the cluster ID", "err", err)
		return
	}
	if err := s.node.WaitApplied(cctx, s.node.LastIndex()); err == nil {
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
