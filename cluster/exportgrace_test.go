package cluster_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/fsm"
)

// exportGraceFleet starts three voters with an export grace of 5s and has
// a follower export two resources. It returns the fleet, the leader and the
// exporter.
func exportGraceFleet(t *testing.T) (*clustertest.Fleet, *clustertest.Slot, *clustertest.Slot, cluster.ServerConfig) {
	t.Helper()
	cfg := cluster.TestServerConfig()
	cfg.ExportGrace = 5 * time.Second
	f := clustertest.NewFleet(t, 3, &cfg)
	leader := threeVoters(t, f)
	exporter := others(f, leader)[0]
	set := []fsm.Command{{Op: fsm.OpExportSet, Node: exporter.ID, Exports: []fsm.Export{
		{Kind: "file", Name: "a", Data: []byte("x")}, {Kind: "file", Name: "b", Data: []byte("y")}}}}
	if _, err := exporter.Server().Node().Apply(t.Context(), set); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the exports on the leader", func() bool { return len(exportsIn(leader, exporter.ID)) == 2 })
	return f, leader, exporter, cfg
}

// exportsIn lists the names node exports, as s's state machine has them.
func exportsIn(s *clustertest.Slot, node string) []string {
	kvs, _ := s.FSM().List(fsm.ExportPrefix+node+"/", 0)
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

// A node that crashes keeps its exports while it is a member; once the
// leader removes it (after DeadServerGrace), they are withdrawn
// ExportGrace later, not before.
func TestExportsOfARemovedNodeAreWithdrawnAfterTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, leader, exporter, cfg := exportGraceFleet(t)
		f.Kill(exporter)
		eventually(t, time.Minute, "the crashed exporter removed", func() bool {
			v, _ := roles(t, leader.Server())
			return !slices.Contains(v, exporter.ID)
		})
		removed := time.Now()
		if got := exportsIn(leader, exporter.ID); len(got) != 2 {
			t.Fatalf("exports withdrawn before the grace began: %v", got)
		}
		// On the bubble's clock: just short of the grace.
		time.Sleep(cfg.ExportGrace - 4*cfg.ReconcileInterval)
		if got := exportsIn(leader, exporter.ID); len(got) != 2 {
			t.Fatalf("exports withdrawn %v after the removal, within the %v grace: %v", time.Since(removed), cfg.ExportGrace, got)
		}
		took := eventually(t, time.Minute, "the exports withdrawn", func() bool {
			for _, s := range others(f, exporter) {
				if len(exportsIn(s, exporter.ID)) > 0 {
					return false
				}
			}
			return true
		})
		if total := time.Since(removed); total > cfg.ExportGrace+2*time.Second {
			t.Errorf("exports withdrawn %v after the removal (waited %v more), want within %v and a few reconcile passes",
				total, took, cfg.ExportGrace)
		}
	})
}

// A node that restarts, even after its seat was taken, keeps its exports:
// back in the ring within the grace, it is not gone for good.
func TestExportsOfANodeThatComesBackStay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, leader, exporter, cfg := exportGraceFleet(t)
		f.Kill(exporter)
		eventually(t, time.Minute, "the crashed exporter removed", func() bool {
			v, _ := roles(t, leader.Server())
			return !slices.Contains(v, exporter.ID)
		})
		f.Restart(exporter, joinTo(leader))
		eventually(t, time.Minute, "the exporter a voter again", func() bool {
			v, _ := roles(t, leader.Server())
			return len(v) == 3
		})
		time.Sleep(3 * cfg.ExportGrace) // on the bubble's clock
		if got := exportsIn(leader, exporter.ID); len(got) != 2 {
			t.Errorf("a node that came back lost its exports: %v", got)
		}
	})
}

// A node that leaves (graft leave) has its exports withdrawn after the
// grace.
func TestExportsOfANodeThatLeftAreWithdrawnAfterTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, leader, exporter, cfg := exportGraceFleet(t)
		if err := exporter.Server().Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.Kill(exporter)
		left := time.Now()
		eventually(t, time.Minute, "the exports withdrawn", func() bool { return len(exportsIn(leader, exporter.ID)) == 0 })
		if took := time.Since(left); took < cfg.ExportGrace-time.Second || took > cfg.ExportGrace+3*time.Second {
			t.Errorf("exports withdrawn %v after the leave, want about the %v grace", took, cfg.ExportGrace)
		}
	})
}
