package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// fillDisk writes a file in dir until its file system is full, and
// returns the file's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return p
		}
	}
}

// writeResult is what became of one write.
type writeResult struct {
	key string
	err error
}

// writeUntil writes keys prefix0, prefix1... of size bytes through n
// until done returns true for the outcomes so far, and returns them.
func writeUntil(t *testing.T, n *raftnode.Node, prefix string, size int, done func([]writeResult) bool) []writeResult {
	t.Helper()
	var out []writeResult
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; !done(out); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d writes: not done within a minute", i)
		}
		k := fmt.Sprintf("%s%d", prefix, i)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := n.Apply(ctx, put(k, strings.Repeat("v", size)))
		cancel()
		out = append(out, writeResult{k, err})
	}
	return out
}

// writeEventually writes key through n, trying again for up to 30
// seconds while the write fails for want of a leader (an election on a
// busy machine), and fails the test if it fails for want of space.
func writeEventually(t *testing.T, n *raftnode.Node, key string, size int) writeResult {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := n.Apply(ctx, put(key, strings.Repeat("v", size)))
		cancel()
		switch {
		case err == nil:
			return writeResult{key, nil}
		case errors.Is(err, raftnode.ErrNoSpace) && !errors.Is(err, raftnode.ErrNoLeader):
			t.Fatalf("write of %s through %s: %v", key, n.ID(), err)
		case time.Now().After(deadline):
			t.Fatalf("write of %s through %s: still failing after 30s: %v", key, n.ID(), err)
		}
	}
}

// checkWrites fails the test unless n's state holds every write that
// succeeded and none that failed for want of space.
func checkWrites(t *testing.T, n *raftnode.Node, results []writeResult) {
	t.Helper()
	for _, r := range results {
		_, ok := n.FSM().Get(r.key)
		switch {
		case r.err == nil && !ok:
			t.Errorf("the acknowledged write of %s is lost", r.key)
		case errors.Is(r.err, raftnode.ErrNoSpace) && ok:
			t.Errorf("the write of %s failed with %q, yet it is applied", r.key, r.err)
		}
	}
}

// A one-node cluster whose data dir fills up mid-write: writes fail with
// an error naming the data dir and "no space left", never panic; what was
// acknowledged stays readable, and a write refused is not applied; once
// space is freed the node takes writes again, and everything acknowledged
// survives a restart.
func TestFullDiskFailsWritesClearlyAndRecoversWhenSpaceReturns(t *testing.T) {
	dir := mountTmpfs(t, 8<<20)
	cfg := raftnode.TestConfig()
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = "solo", dir, true
	n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n.Close() }()
	waitLeader(t, n)
	before := writeUntil(t, n, "before", 16<<10, func(r []writeResult) bool { return len(r) == 20 })
	filler := fillDisk(t, dir)
	full := writeUntil(t, n, "full", 16<<10, func(r []writeResult) bool {
		return len(r) > 0 && r[len(r)-1].err != nil
	})
	results := append(before, full...)
	for _, r := range results {
		if r.err == nil {
			continue
		}
		if !errors.Is(r.err, raftnode.ErrNoSpace) {
			t.Fatalf("write of %s on a full disk: %v, want ErrNoSpace", r.key, r.err)
		}
		for _, want := range []string{dir, "no space left"} {
			if !strings.Contains(r.err.Error(), want) {
				t.Errorf("error %q does not say %q", r.err, want)
			}
		}
	}
	for _, r := range before { // reads go on from the node's state
		if _, ok := n.FSM().Get(r.key); !ok {
			t.Errorf("on a full disk, the node cannot read %s", r.key)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	after := writeUntil(t, n, "after", 16<<10, func(r []writeResult) bool {
		return len(r) > 0 && r[len(r)-1].err == nil
	})
	results = append(results, after...)
	if err := n.Linearize(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, n, results)

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, "solo", dir, true)
	waitLeader(t, n)
	if err := n.Linearize(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, n, results)
}

// A follower whose data dir is full neither stops the cluster nor
// panics: the others go on writing, and the follower catches up once
// space returns.
func TestFollowerWithFullDiskCatchesUpWhenSpaceReturns(t *testing.T) {
	full := mountTmpfs(t, 8<<20)
	// openNode runs on production's timeouts: no election on a busy
	// machine moves the leadership.
	open := func(id, dir string, bootstrap bool) *raftnode.Node { return openNode(t, id, dir, bootstrap) }
	a := open("a", t.TempDir(), true)
	defer a.Close()
	waitLeader(t, a)
	b := open("b", t.TempDir(), false)
	defer b.Close()
	c := open("c", full, false)
	defer c.Close()
	for _, n := range []*raftnode.Node{b, c} {
		if err := a.AddVoter(n.ID(), n.Addr(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	filler := fillDisk(t, full)
	// Writes through the leader and through the full follower (which
	// forwards them) go on, until the follower has found its disk full
	// and some more.
	var results []writeResult
	deadline := time.Now().Add(time.Minute)
	for i := 0; raftnode.NoSpace(c) == nil || i < 20; i++ {
		if time.Now().After(deadline) {
			t.Fatal("c did not find its disk full within a minute")
		}
		via := []*raftnode.Node{a, c}[i%2]
		results = append(results, writeEventually(t, via, fmt.Sprintf("w%d", i), 16<<10))
	}
	last := results[len(results)-1].key
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to catch up", func() bool { _, ok := c.FSM().Get(last); return ok })
	checkWrites(t, c, results)
	if err := raftnode.NoSpace(c); err != nil {
		t.Errorf("c caught up, yet says %v", err)
	}
}

// A write forwarded to a leader whose data dir is full fails on the
// follower it was made on with ErrNoSpace, as it would on the leader:
// the error crosses the RPC as its sentinel, not as text alone, and names
// the leader's data dir.
func TestWriteForwardedToAFullLeaderFailsWithErrNoSpace(t *testing.T) {
	full := mountTmpfs(t, 8<<20)
	// openNode runs on production's timeouts: no election on a busy
	// machine moves the leadership.
	open := func(id, dir string, bootstrap bool) *raftnode.Node { return openNode(t, id, dir, bootstrap) }
	a := open("a", full, true)
	defer a.Close()
	waitLeader(t, a)
	b := open("b", t.TempDir(), false)
	defer b.Close()
	if err := a.AddVoter(b.ID(), b.Addr(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to know its leader", func() bool { _, addr := b.Leader(); return addr == a.Addr() })
	fillDisk(t, full)
	results := writeUntil(t, b, "w", 16<<10, func(r []writeResult) bool {
		return len(r) > 0 && r[len(r)-1].err != nil
	})
	err := results[len(results)-1].err
	t.Logf("what the writer on the follower sees: %v", err)
	if !errors.Is(err, raftnode.ErrNoSpace) || errors.Is(err, raftnode.ErrNoLeader) {
		t.Fatalf("write through b to a full leader: %v, want ErrNoSpace", err)
	}
	for _, want := range []string{"no space left in the data dir " + full, "no space left on device"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	checkWrites(t, a, results)
}
