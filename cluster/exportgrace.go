package cluster

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// withdrawGoneExports withdraws, on the leader, the exports of nodes gone
// for good: nodes that export resources but are neither in the raft
// configuration nor alive in the ring (removed after DeadServerGrace, or
// left), and have been so for ExportGrace while this node led. A node that
// crashes or restarts is still in raft; one that comes back is alive in
// the ring: either keeps its exports and restarts the clock. So does a new
// leader, whose clock starts when it begins to lead.
func (s *Server) withdrawGoneExports(ctx context.Context, inRaft map[string]raft.Server, alive map[string]ringMember, now time.Time, leading func() bool) {
	exporting := exportingNodes(s.node.FSM())
	for name := range s.lead.exportsGone {
		if !exporting[name] {
			delete(s.lead.exportsGone, name)
		}
	}
	for _, name := range sortedKeys(exporting) {
		_, in := inRaft[name]
		_, up := alive[name]
		if in || up {
			delete(s.lead.exportsGone, name)
			continue
		}
		since, ok := s.lead.exportsGone[name]
		if !ok {
			s.lead.exportsGone[name] = now
			s.log.Info("a node that exports resources is gone; withdrawing them after the export grace",
				"server", name, "export_grace", s.cfg.ExportGrace)
			continue
		}
		if now.Sub(since) < s.cfg.ExportGrace {
			continue
		}
		if !leading() {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Raft.ApplyTimeout)
		_, err := s.node.applyAsLeader(cctx, []fsm.Command{{Op: fsm.OpRemoveNode, Node: name}})
		cancel()
		if err != nil {
			s.log.Warn("could not withdraw the exports of a node gone for good", "server", name, "err", err)
			continue
		}
		delete(s.lead.exportsGone, name)
		s.log.Info("withdrew the exports of a node gone for good", "server", name, "gone_for", now.Sub(since).Round(time.Millisecond))
	}
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
