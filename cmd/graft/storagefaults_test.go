package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
)

// An agent killed (as a crash is) whose raft.db is then damaged refuses
// to start, saying which file and what to do, never panicking; done as
// it says, the agent rejoins its running cluster empty and gets the
// cluster's state back, the writes made while it was down included.
func TestAgentWithDamagedRaftStateRefusesAndRejoinsAsItsErrorSays(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	join := []string{"--join", gossip, "--token", key}
	startNode(t, "b", join...)
	c := startNode(t, "c", join...)
	waitUntil(t, "three voters", func() (bool, error) {
		got, err := a.trySuffrages(t)
		return len(got) == 3 && got["c"] == "voter", err
	})
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", a.data, "before", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	waitUntil(t, "c to apply the write", func() (bool, error) {
		_, stdout, _ := graft(t, "kv", "get", "--data-dir", c.data, "before")
		return stdout == "1", nil
	})
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	// A node whose disk is replaced comes back long after its crash:
	// once its peers have seen it fail.
	waitUntil(t, "a to see c fail", func() (bool, error) {
		ms, err := a.tryMembers(t)
		return err == nil && ms["c"].Gossip != "alive", err
	})
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", a.data, "while-down", "2"); code != 0 {
		t.Fatalf("put with c down: exit %d: %s", code, stderr)
	}
	db := filepath.Join(c.data, "raft", "raft.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2 * 4096; i < len(b); i++ { // every page but the two meta pages
		b[i] = byte(0xA5 ^ i)
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}

	refused := startAgent(t, append([]string{"run", "--data-dir", c.data, "--hostname", "c"}, join...)...)
	if code := refused.exitCode(clusterWait); code == 0 {
		t.Fatal("the agent ran on a damaged raft.db")
	}
	out := refused.output()
	raftDir := filepath.Join(c.data, "raft")
	for _, want := range []string{"raft state damaged: " + db, "mv " + raftDir + " " + raftDir + ".damaged", "rejoins empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("the agent's output does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "panic") {
		t.Errorf("the agent panicked:\n%s", out)
	}
	mv := regexp.MustCompile(`\(mv (\S+) (\S+)\)`).FindStringSubmatch(out)
	if mv == nil {
		t.Fatal("the agent's output names no mv command")
	}
	if err := os.Rename(mv[1], mv[2]); err != nil {
		t.Fatalf("following the agent's mv: %v", err)
	}
	startTestAgent(t, c.data, "c", join...)
	// Rejoining takes a gossip round, an address change in raft and a
	// snapshot: on a busy machine, more than clusterWait.
	for deadline := time.Now().Add(3 * clusterWait); ; {
		if _, stdout, _ := graft(t, "kv", "get", "--data-dir", c.data, "while-down"); stdout == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c did not get the cluster's state back within %v", 3*clusterWait)
		}
		<-time.After(100 * time.Millisecond)
	}
	if _, stdout, stderr := graft(t, "kv", "get", "--data-dir", c.data, "before"); stdout != "1" {
		t.Errorf("c reads before=%q after rejoining: %s", stdout, stderr)
	}
}

// An agent whose data dir is on a read-only mount refuses to start,
// naming the dir and saying it is read-only.
func TestAgentOnReadOnlyDataDirSaysSo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("mounting a file system needs root (CAP_SYS_ADMIN); this test runs as uid %d", os.Geteuid())
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount a read-only tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		if b, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(b), " "+dir+" ") {
			t.Errorf("%s is still mounted (%v)", dir, err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
	defer cancel()
	code, _, stderr := cliContext(ctx, "run", "--data-dir", dir, "--hostname", "a")
	if code == 0 {
		t.Fatal("the agent ran on a read-only data dir")
	}
	for _, want := range []string{"data dir " + dir + " is on a read-only file system", "--data-dir"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the agent's error does not say %q:\n%s", want, stderr)
		}
	}
}

// A damaged node-id file is named as damaged, with what to write into it
// or how to do without it, not taken for another node's name.
func TestDamagedNodeIDFileIsNamedWithTheWayOut(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	startTestAgent(t, data, "h1").stop()
	p := filepath.Join(data, nodeIDFile)
	if err := os.WriteFile(p, []byte("\x00\x17\xff garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
	defer cancel()
	code, _, stderr := cliContext(ctx, "run", "--data-dir", data, "--hostname", "h1")
	if code == 0 {
		t.Fatal("the agent ran with a damaged node-id file")
	}
	for _, want := range []string{p + " is damaged", "write the node's name into it", `adopt this host's name "h1"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the agent's error does not say %q:\n%s", want, stderr)
		}
	}
}

// A node with raft state whose remembered-peers file is damaged starts
// (raft knows its cluster), says which file it could not read and what it
// is for, and remembers its peers in it again.
func TestDamagedPeersFileIsNamedAndRewritten(t *testing.T) {
	_, gossip, key := firstNode(t, "a")
	join := []string{"--join", gossip, "--token", key}
	b := startNode(t, "b", join...)
	p := filepath.Join(b.data, cluster.PeersFile)
	waitUntil(t, "b to remember a", func() (bool, error) {
		peers, err := cluster.RememberedPeers(b.data)
		return slices.Contains(peers, gossip), err
	})
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.done
	if err := os.WriteFile(p, []byte(`["127.0.0.1:7946", "trunc`), 0o600); err != nil {
		t.Fatal(err)
	}
	again := startTestAgent(t, b.data, "b", join...) // as its service restarts it
	again.waitLog(clusterWait, p+" is damaged, not a JSON list of gossip addresses")
	waitUntil(t, "b to remember a again", func() (bool, error) {
		peers, err := cluster.RememberedPeers(b.data)
		return err == nil && slices.Contains(peers, gossip), nil
	})
}

// `graft kv put` on a one-node cluster whose data dir fills up says the
// data dir is full; what was written stays readable, and once space is
// freed, writes work again.
func TestKVPutOnAFullDataDirSaysSoAndWorksOnceSpaceIsFreed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("mounting a file system needs root (CAP_SYS_ADMIN); this test runs as uid %d", os.Geteuid())
	}
	data := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", data, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(data, 0); err != nil {
			t.Errorf("unmount %s: %v", data, err)
			_ = syscall.Unmount(data, syscall.MNT_DETACH)
		}
		if b, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(b), " "+data+" ") {
			t.Errorf("%s is still mounted (%v)", data, err)
		}
	})
	a := startTestAgent(t, data, "h1")
	defer a.stop()
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "before", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 4096))
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v", data, err)
	}
	value := strings.Repeat("v", 64<<10)
	var stderr string
	for i := 0; ; i++ {
		var code int
		if code, _, stderr = graft(t, "kv", "put", "--data-dir", data, "full", value); code != 0 {
			break
		}
		if i == 100 {
			t.Fatal("100 writes of 64 KiB succeeded on a full 8 MiB data dir")
		}
	}
	t.Logf("what the user sees: %s", stderr)
	for _, want := range []string{"no space left in the data dir " + data, "no space left on device"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("kv put on a full data dir does not say %q: %s", want, stderr)
		}
	}
	if _, stdout, stderr := graft(t, "kv", "get", "--data-dir", data, "before"); stdout != "1" {
		t.Errorf("on a full data dir, kv get reads %q: %s", stdout, stderr)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a write once space is freed", func() (bool, error) {
		code, _, _ := graft(t, "kv", "put", "--data-dir", data, "after", "2")
		return code == 0, nil
	})
	if _, stdout, stderr := graft(t, "kv", "get", "--linearizable", "--data-dir", data, "before"); stdout != "1" {
		t.Errorf("after space returned, kv get reads %q: %s", stdout, stderr)
	}
}

// An agent whose raft.db is damaged while it runs (its pages overwritten
// in place) stops, exiting non-zero with the message a start on it gives,
// saying the node stopped, naming the file and the way back; never with a
// Go panic (bolt panics on the page inside raft's goroutine).
func TestAgentWhoseRaftStateIsDamagedWhileItRunsStopsSayingSo(t *testing.T) {
	data := t.TempDir()
	a := startTestAgent(t, data, "h1")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "before", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	db := filepath.Join(data, "raft", "raft.db")
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, fi.Size()-2*4096) // every page but the two meta pages
	for i := range garbage {
		garbage[i] = byte(0xA5 ^ i)
	}
	if _, err := f.WriteAt(garbage, 2*4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The next write makes bolt read the damaged pages.
	ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
	defer cancel()
	code, _, stderr := cliContext(ctx, "kv", "put", "--data-dir", data, "after", "2")
	t.Logf("the write after the damage: exit %d: %s", code, stderr)
	if code := a.exitCode(clusterWait); code == 0 {
		t.Fatal("the agent went on, or stopped cleanly, on a damaged raft.db")
	}
	out := a.output()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "damaged") {
			t.Logf("what the user sees: %s", l)
		}
	}
	raftDir := filepath.Join(data, "raft")
	for _, want := range []string{"raft state damaged: " + db, "the node stopped", "mv " + raftDir + " " + raftDir + ".damaged",
		"rejoins empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("the agent's output does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Errorf("the agent panicked:\n%s", out)
	}
}
