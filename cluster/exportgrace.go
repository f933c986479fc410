package cluster

import (
	"context"
	"strings"

	"github.com/graftcm/graft/fsm"
)

// withdrawExports withdraws the exports of a node gone for good (a, an
// actWithdraw: see planner.exports), through this leader only, and reports
// whether it did.
func (s *Server) withdrawExports(ctx context.Context, a action) bool {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
	defer cancel()
	if _, err := s.node.ApplyAsLeader(cctx, []fsm.Command{{Op: fsm.OpRemoveNode, Node: a.server}}); err != nil {
		s.log.Warn("could not withdraw the exports of a node gone for good", "server", a.server, "err", err)
		return false
	}
	s.log.Info(a.reason, a.attrs...)
	return true
}

// exportingNodes returns the nodes that export resources.
func exportingNodes(f *fsm.FSM) map[string]bool {
	nodes := map[string]bool{}
	kvs, _ := f.List(fsm.ExportPrefix, 0)
	for _, kv := range kvs {
		if node, _, ok := strings.Cut(strings.TrimPrefix(kv.Key, fsm.ExportPrefix), "/"); ok {
			nodes[node] = true
		}
	}
	return nodes
}
