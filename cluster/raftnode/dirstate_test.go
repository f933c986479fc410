package raftnode_test

import (
	"os"
	"path/filepath"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/graftcm/graft/cluster/raftnode"
)

// Issue 13 (forming, review): a joiner stopped before a cluster reached it
// has a raft directory (Open makes it) but no raft state; discovery took
// it for a node with state, and the node then bootstrapped a cluster of
// its own. DirHasState tells such a directory from one that holds a term,
// a log or a snapshot, without starting raft.
func TestDirHasStateTellsAnEmptyRaftDirFromOneWithState(t *testing.T) {
	hasState := func(t *testing.T, dir string) bool {
		t.Helper()
		has, err := raftnode.DirHasState(dir)
		if err != nil {
			t.Fatalf("DirHasState(%s): %v", dir, err)
		}
		return has
	}
	if dir := t.TempDir(); hasState(t, dir) {
		t.Errorf("a data dir with no raft directory holds state")
	}

	fresh := t.TempDir()
	if err := openNode(t, "joiner", fresh, false).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "raft", "raft.db")); err != nil {
		t.Fatalf("Open made no raft store: %v", err)
	}
	if hasState(t, fresh) {
		t.Errorf("a raft directory of a node never added to a cluster holds state")
	}

	// raft keeps a leader's term before it takes any entry.
	termOnly := t.TempDir()
	if err := openNode(t, "voter", termOnly, false).Close(); err != nil {
		t.Fatal(err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(termOnly, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if !hasState(t, termOnly) {
		t.Errorf("a raft directory that holds a term holds no state")
	}

	booted := t.TempDir()
	n := openNode(t, "solo", booted, true)
	waitLeader(t, n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !hasState(t, booted) {
		t.Errorf("the raft directory of a bootstrapped node holds no state")
	}
	// Looking changed nothing: the node starts on its state.
	n = openNode(t, "solo", booted, false)
	defer n.Close()
	if !n.HasState() || !n.StartedOnLog() {
		t.Errorf("after DirHasState, the bootstrapped node starts with no log")
	}
}
