package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// leaderState is what the reconciler remembers while this node leads.
type leaderState struct {
	term         uint64
	expired      map[string]bool      // gone nodes whose slots were released
	goneSince    map[string]time.Time // raft servers missing from the ring, and since when
	healthySince map[string]time.Time // non-voters caught up, and since when
}

// reconcileLoop reconciles on every tick and membership event.
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
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// ringMember is a node of this cluster that the ring says is up.
type ringMember struct {
	name string
	meta Meta
}

// reconcile makes the raft configuration follow the ring. On the leader:
//
//   - a server alive in the ring but not in raft joins as a non-voter (and
//     a server whose cluster address changed is updated);
//   - a non-voter that has stayed caught up for Stabilization is promoted
//     while there are fewer alive voters than wanted: the largest odd
//     number up to Voters that the alive servers allow;
//   - a server gone from the ring has its semaphore slots and ephemeral
//     keys released at once (expire-node); it is removed from raft at once
//     if it left, after DeadServerGrace if it died, and never when the
//     voters left alive would not be a quorum of the new configuration.
func (s *Server) reconcile(ctx context.Context) {
	term := s.node.raft.CurrentTerm()
	if s.lead.term != term || s.lead.expired == nil {
		s.lead = leaderState{term: term, expired: map[string]bool{}, goneSince: map[string]time.Time{},
			healthySince: map[string]time.Time{}}
	}
	if s.ClusterID() == "" {
		s.writeClusterID(ctx)
	}
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	self := s.cfg.Raft.NodeID
	now := time.Now()

	alive := map[string]ringMember{}
	for name, e := range s.ringView() {
		if e.meta.Cluster == s.cfg.ClusterName {
			alive[name] = ringMember{name: name, meta: e.meta}
			delete(s.lead.expired, name) // back: expire it again if it goes again
		}
	}
	inRaft := map[string]raft.Server{}
	for _, srv := range servers {
		inRaft[string(srv.ID)] = srv
	}

	// Join new servers as non-voters; follow address changes.
	s.goneMu.Lock()
	departed := maps.Clone(s.departed)
	s.goneMu.Unlock()
	for _, name := range sortedKeys(alive) {
		m := alive[name]
		srv, ok := inRaft[name]
		switch {
		case !ok && !departed[name].IsZero():
			// Leaving: it asked to be removed and has not left the ring yet.
		case !ok:
			s.log.Info("adding a server as a non-voter", "server", name, "address", m.meta.RaftAddr)
			s.change(s.node.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout))
		case string(srv.Address) != m.meta.RaftAddr && name != self:
			s.log.Info("a server's cluster address changed", "server", name, "from", srv.Address, "to", m.meta.RaftAddr)
			if srv.Suffrage == raft.Voter {
				s.change(s.node.raft.AddVoter(srv.ID, raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout))
			} else {
				s.change(s.node.raft.AddNonvoter(srv.ID, raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout))
			}
		}
	}

	// Promote caught-up non-voters while voters are short.
	aliveServers, aliveVoters := 0, 0
	for _, srv := range servers {
		if _, up := alive[string(srv.ID)]; up || string(srv.ID) == self {
			aliveServers++
			if srv.Suffrage == raft.Voter {
				aliveVoters++
			}
		}
	}
	want := min(s.cfg.Voters, aliveServers)
	if want%2 == 0 {
		want--
	}
	leaderLast := s.node.raft.LastIndex()
	for _, srv := range servers {
		id := string(srv.ID)
		if srv.Suffrage == raft.Voter || id == self {
			continue
		}
		m, up := alive[id]
		if !up || !s.caughtUp(ctx, string(srv.Address), leaderLast, id, now) {
			delete(s.lead.healthySince, id)
			continue
		}
		if aliveVoters >= want || now.Sub(s.lead.healthySince[id]) < s.cfg.Stabilization {
			continue
		}
		s.log.Info("promoting a caught-up non-voter", "server", id, "voters_alive", aliveVoters, "want", want)
		if s.change(s.node.raft.AddVoter(srv.ID, raft.ServerAddress(m.meta.RaftAddr), 0, s.cfg.Raft.ApplyTimeout)) {
			aliveVoters++
		}
	}

	// Release what gone nodes held; remove them from raft when safe.
	s.goneMu.Lock()
	gone := make(map[string]goneNode, len(s.gone))
	for k, v := range s.gone {
		gone[k] = v
	}
	s.goneMu.Unlock()
	for _, name := range sortedKeys(gone) {
		if _, up := alive[name]; !up && !s.lead.expired[name] {
			s.expire(ctx, name)
		}
	}
	voters := 0
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, srv := range servers {
		id := string(srv.ID)
		if _, up := alive[id]; up || id == self {
			delete(s.lead.goneSince, id)
			continue
		}
		if _, ok := s.lead.goneSince[id]; !ok {
			s.lead.goneSince[id] = now
		}
		g, known := gone[id]
		if !s.lead.expired[id] {
			s.expire(ctx, id)
		}
		due := known && g.left || now.Sub(s.lead.goneSince[id]) >= s.cfg.DeadServerGrace
		if !due {
			continue
		}
		if srv.Suffrage == raft.Voter {
			newVoters := voters - 1
			if aliveVoters < newVoters/2+1 {
				s.log.Warn("not removing a dead voter: the voters left alive would not be a quorum",
					"server", id, "voters", voters, "alive", aliveVoters)
				continue
			}
		}
		s.log.Info("removing a server that is gone", "server", id, "graceful", known && g.left,
			"gone_for", now.Sub(s.lead.goneSince[id]).Round(time.Millisecond))
		if s.change(s.node.raft.RemoveServer(srv.ID, 0, s.cfg.Raft.ApplyTimeout)) {
			delete(s.lead.goneSince, id)
			if srv.Suffrage == raft.Voter {
				voters--
			}
		}
	}
}

// change waits for a configuration change and logs a failure.
func (s *Server) change(f raft.IndexFuture) bool {
	if err := f.Error(); err != nil {
		s.log.Warn("raft configuration change failed", "err", err)
		return false
	}
	return true
}

// caughtUp asks a server for its progress and tracks how long it has been
// within CatchupLag of the leader.
func (s *Server) caughtUp(ctx context.Context, addr string, leaderLast uint64, id string, now time.Time) bool {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.HeartbeatTimeout)
	defer cancel()
	resp, err := s.node.rpc.Call(cctx, addr, &Request{Op: rpcStats})
	if err != nil || resp.Code != codeOK {
		return false
	}
	s.contactMu.Lock()
	s.contact[id] = now
	s.contactMu.Unlock()
	if resp.Index+s.cfg.CatchupLag < leaderLast {
		return false
	}
	if _, ok := s.lead.healthySince[id]; !ok {
		s.lead.healthySince[id] = now
	}
	return true
}

// expire releases a gone node's semaphore slots and ephemeral keys.
func (s *Server) expire(ctx context.Context, name string) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
	defer cancel()
	if _, err := s.node.Apply(cctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: name}}); err != nil {
		s.log.Warn("could not release a gone node's slots", "server", name, "err", err)
		return
	}
	s.lead.expired[name] = true
	s.log.Info("released a gone node's semaphore slots and ephemeral keys", "server", name)
}

// writeClusterID gives a freshly bootstrapped cluster its ID.
func (s *Server) writeClusterID(ctx context.Context) {
	id, err := newClusterID()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
	defer cancel()
	_, err = s.node.Apply(cctx, []fsm.Command{{Op: fsm.OpTxn,
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

// removeLeaving handles a graceful leave on the leader: the node's slots go
// and it leaves raft now.
func (s *Server) removeLeaving(ctx context.Context, id string) error {
	if !s.node.IsLeader() {
		return fmt.Errorf("not the leader")
	}
	// Until it leaves the ring, the node is still alive there: do not add
	// it back meanwhile.
	s.goneMu.Lock()
	s.departed[id] = time.Now()
	s.goneMu.Unlock()
	if _, err := s.node.Apply(ctx, []fsm.Command{{Op: fsm.OpExpireNode, Node: id}}); err != nil {
		return err
	}
	if err := s.node.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.Raft.ApplyTimeout).Error(); err != nil {
		return err
	}
	s.log.Info("a server left gracefully", "server", id)
	s.kick()
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
