package cluster_test

import (
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/fsm"
)

// dirEntries lists the paths under dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		names = append(names, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Issue 9, item 7 (review): whether a node had peers was decided on its
// running server, after its join loop had started, so a node that joined
// within milliseconds was taken for one that had peers before. The data
// dir alone says it, before anything starts: the other servers of the
// raft configuration (from the log, and from a snapshot once the log is
// compacted) and the peers remembered, read without changing the data
// dir.
func TestReadHistoryTellsFromTheDataDirWhetherANodeHadPeers(t *testing.T) {
	dir := t.TempDir()
	if h, err := cluster.ReadHistory(dir, "a"); err != nil || h.HadPeers() {
		t.Fatalf("an empty data dir: %+v, %v; want no peers", h, err)
	}
	cfg := cluster.TestServerConfig()
	cfg.Raft.NodeID, cfg.Raft.DataDir, cfg.Insecure = "a", dir, true
	cfg.Raft.TrailingLogs = 1
	cfg.DeadServerGrace = time.Hour // the ghosts below stay in raft
	srv, err := cluster.StartServer(cfg, cluster.ServerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a leads", srv.Node().IsLeader)
	r := srv.Node()
	if err := r.AddNonvoter("ghost", "127.0.0.1:1", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveServer("ghost", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.AddNonvoter("ghost2", "127.0.0.1:2", 0); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirEntries(t, dir)
	h, err := cluster.ReadHistory(dir, "a")
	if err != nil || !slices.Equal(h.Servers, []string{"ghost2"}) || len(h.Remembered) != 0 || !h.HadPeers() {
		t.Errorf("a data dir whose raft names ghost2: %+v, %v", h, err)
	}
	if after := dirEntries(t, dir); !slices.Equal(before, after) {
		t.Errorf("reading the history changed the data dir: %q, then %q", before, after)
	}

	// The latest configuration is in the snapshot alone once the log
	// that followed is gone: another data dir whose log was compacted.
	dir2 := t.TempDir()
	cfg.Raft.DataDir = dir2
	srv, err = cluster.StartServer(cfg, cluster.ServerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a leads", srv.Node().IsLeader)
	r = srv.Node()
	if err := r.AddNonvoter("ghost", "127.0.0.1:1", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := srv.Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "k", Value: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if h, err := cluster.ReadHistory(dir2, "a"); err != nil || !slices.Equal(h.Servers, []string{"ghost"}) {
		t.Errorf("a data dir whose snapshot names ghost (its log compacted): %+v, %v", h, err)
	}

	if err := cluster.RememberPeers(dir, []string{"10.0.0.2:7946"}); err != nil {
		t.Fatal(err)
	}
	if h, err := cluster.ReadHistory(dir, "a"); err != nil || !slices.Equal(h.Remembered, []string{"10.0.0.2:7946"}) {
		t.Errorf("a data dir that remembers a peer: %+v, %v", h, err)
	}
}
