package raftnode_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
)

// damageInPlace overwrites every page of the bolt file at path but its
// two meta pages with garbage, in place, as a disk going bad under a
// running node would (bolt maps the file: it sees the change).
func damageInPlace(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, fi.Size()-2*4096)
	for i := range garbage {
		garbage[i] = byte(0xA5 ^ i)
	}
	if _, err := f.WriteAt(garbage, 2*4096); err != nil {
		t.Fatal(err)
	}
}

// checkStoppedForDamage fails the test unless n found its raft.db in
// dataDir damaged, saying so as a start on it would, and closes n.
func checkStoppedForDamage(t *testing.T, n *raftnode.Node, dataDir string) {
	t.Helper()
	select {
	case <-n.Damaged():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not find its raft.db damaged within 30s", n.ID())
	}
	err := n.DamageErr()
	t.Logf("what the node says: %v", err)
	raftDir := filepath.Join(dataDir, "raft")
	if !errors.Is(err, raftnode.ErrDamagedState) {
		t.Errorf("damage found while running: %v, want ErrDamagedState", err)
	}
	for _, want := range []string{filepath.Join(raftDir, "raft.db"), "the node stopped",
		"mv " + raftDir + " " + raftDir + ".damaged"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("closing the damaged node: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("closing the damaged node did not return within 30s")
	}
}

// A one-node cluster whose raft.db is damaged while it runs: the next
// write makes bolt panic on a page inside raft's goroutine. The node says
// its state is damaged, naming the file and the way back, stops storing,
// and closes; the process does not panic.
func TestRaftDBDamagedWhileRunningStopsTheNodeWithoutAPanic(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, "solo", dir, true)
	defer n.Close()
	waitLeader(t, n)
	writeKeys(t, n, "k", 50, 100)
	damageInPlace(t, filepath.Join(dir, "raft", "raft.db"))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := n.Apply(ctx, put("after", "damage")); !errors.Is(err, raftnode.ErrDamagedState) {
		t.Errorf("a write on a damaged raft.db: %v, want ErrDamagedState", err)
	}
	checkStoppedForDamage(t, n, dir)
}

// A follower whose raft.db is damaged while it runs stops the same way,
// and the two others go on writing.
func TestFollowerWithRaftDBDamagedWhileRunningStopsAndTheOthersGoOn(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	a, b, c := openThree(t, dirs[0], dirs[1], dirs[2])
	defer c.Close()
	writeKeys(t, a, "k", 50, 100)
	waitFor(t, "c to apply the writes", func() bool { _, ok := c.FSM().Get("k49"); return ok })
	damageInPlace(t, filepath.Join(dirs[2], "raft", "raft.db"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		leader := waitLeader(t, a, b)
		writeKeys(t, leader, "after", 20, 100)
	}()
	checkStoppedForDamage(t, c, dirs[2])
	<-done
	if _, ok := b.FSM().Get("after19"); !ok {
		waitFor(t, "b to apply the writes made after the damage", func() bool { _, ok := b.FSM().Get("after19"); return ok })
	}
}
