package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	apiserver "github.com/graftcm/graft/api/server"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// lockWait bounds what the lock tests wait for.
const lockWait = 30 * time.Second

// lockAgent serves, until the test ends, the local API of a one-node
// in-process cluster with its semaphores, and returns the socket, the
// World and the cluster node behind it.
func lockAgent(t *testing.T) (string, *world.World, *raftnode.Node) {
	t.Helper()
	c := clustertest.New(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), lockWait)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	node := c.Members[0].Node()
	w, err := world.New(node, "node0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := apiserver.NewServer(apiserver.Config{Store: w, Semaphores: w, Status: node.Status, Host: "node0", Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), apiSocket)
	ln, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(goRun(func(ctx context.Context) error { return srv.Serve(ctx, ln) },
		func(err error) { t.Errorf("serve: %v", err) }))
	return sock, w, node
}

// startLock runs `graft lock args...` as a process of its own (the test
// binary as graft), killed if still running when the test ends.
func startLock(t *testing.T, args ...string) *agent {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"lock"}, args...)...)
	// A lock killed at the test's end leaves its command's output open
	// for as long as the command runs.
	cmd.WaitDelay = 5 * time.Second
	return startProcess(t, cmd)
}

// waitLog waits until the file holds want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%q in %s", want, filepath.Base(path)), func() (bool, error) {
		b, err := os.ReadFile(path)
		return strings.Contains(string(b), want), err
	})
}

// waiters is how many wait for a slot of id.
func waiters(node *raftnode.Node, id string) int {
	st, _ := node.FSM().Sema(id)
	return len(st.Waiters)
}

// holders is how many hold a slot of id.
func holders(node *raftnode.Node, id string) int {
	st, _ := node.FSM().Sema(id)
	return len(st.Holders)
}

// recordScript appends "start ID TOKEN" to the log, holds the slot a
// moment, and appends "end ID TOKEN".
const recordScript = `echo "start $GRAFT_LOCK_ID $GRAFT_LOCK_TOKEN" >> "$1"; sleep 0.2; echo "end $GRAFT_LOCK_ID $GRAFT_LOCK_TOKEN" >> "$1"`

// Three `graft lock`s of a count-1 semaphore run their commands one
// after the other, never overlapping, each with a larger token than the
// one before.
func TestLockHoldersOfCountOneNeverOverlap(t *testing.T) {
	sock, _, node := lockAgent(t)
	log := filepath.Join(t.TempDir(), "log")
	var locks []*agent
	for range 3 {
		locks = append(locks, startLock(t, "--api", sock, "db", "--", "sh", "-c", recordScript, "sh", log))
	}
	for _, l := range locks {
		if code := l.exitCode(lockWait); code != 0 {
			t.Fatalf("graft lock: exit %d, output %q", code, l.output())
		}
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 6 {
		t.Fatalf("log:\n%s\nwant three start and end pairs", raw)
	}
	var last uint64
	for i := 0; i < len(lines); i += 2 {
		start, end := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(start) != 3 || start[0] != "start" || start[1] != "db" || fmt.Sprint(end) != fmt.Sprint([]string{"end", "db", start[2]}) {
			t.Fatalf("log:\n%s\nwant each start followed by its own end (no overlap)", raw)
		}
		token, err := strconv.ParseUint(start[2], 10, 64)
		if err != nil || token <= last {
			t.Errorf("token %q after %d: want increasing numbers", start[2], last)
		}
		last = token
	}
	if n := holders(node, "db") + waiters(node, "db"); n != 0 {
		t.Errorf("%d holders and waiters left after every lock exited", n)
	}
}

// Two `graft lock --count 2`s run their commands at the same time: each
// waits, holding its slot, until both have started.
func TestLockCountTwoLetsTwoRunAtOnce(t *testing.T) {
	sock, _, _ := lockAgent(t)
	log := filepath.Join(t.TempDir(), "log")
	script := `echo start >> "$1"; i=0; while [ "$(grep -c start "$1")" -lt 2 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo end >> "$1"`
	a := startLock(t, "--api", sock, "--count", "2", "pair", "--", "sh", "-c", script, "sh", log)
	b := startLock(t, "--api", sock, "--count", "2", "pair", "--", "sh", "-c", script, "sh", log)
	for _, l := range []*agent{a, b} {
		if code := l.exitCode(lockWait); code != 0 {
			t.Fatalf("graft lock: exit %d, output %q", code, l.output())
		}
	}
	if raw, _ := os.ReadFile(log); string(raw) != "start\nstart\nend\nend\n" {
		t.Errorf("log:\n%s\nwant both started before either ended", raw)
	}
}

// graft lock exits with its command's status, silently, and gives the
// slot back; a command that cannot be found exits 127.
func TestLockExitsWithTheCommandsStatusAndReleases(t *testing.T) {
	sock, _, node := lockAgent(t)
	code, stdout, stderr := graft(t, "lock", "--api", sock, "db", "--", "sh", "-c", `echo "$GRAFT_LOCK_ID"; exit 3`)
	if code != 3 || stdout != "db\n" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 3, db and nothing", code, stdout, stderr)
	}
	if n := holders(node, "db"); n != 0 {
		t.Errorf("%d holders after the lock exited", n)
	}
	if code, _, stderr := graft(t, "lock", "--api", sock, "db", "--", "sh", "-c", "kill -KILL $$"); code != 128+9 || stderr != "" {
		t.Errorf("a command killed by SIGKILL: exit %d, stderr %q; want 137 and nothing", code, stderr)
	}
	code, _, stderr = graft(t, "lock", "--api", sock, "db", "no-such-command-graft-test")
	if code != exitNotFound || !strings.Contains(stderr, "no-such-command-graft-test") {
		t.Errorf("a missing command: exit %d, stderr %q", code, stderr)
	}
	dir := t.TempDir()
	if code, _, stderr := graft(t, "lock", "--data-dir", dir, "db", "--", "true"); code != 1 || !strings.Contains(stderr, "no graft agent answers at "+dir) {
		t.Errorf("no agent: exit %d, stderr %q; want 1 naming the socket", code, stderr)
	}
	if code, _, _ := graft(t, "lock", "--api", sock, "db"); code != exitUsage {
		t.Errorf("no command: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := graft(t, "lock", "--api", sock, "--count", "0", "db", "--", "true"); code != exitUsage {
		t.Errorf("--count 0: exit %d, want %d", code, exitUsage)
	}
}

// An interrupt while waiting for the slot gives up the place in the
// queue (the command never runs) and exits 130; --timeout gives up too,
// exiting 124.
func TestLockInterruptedWhileWaitingLeavesTheQueue(t *testing.T) {
	sock, w, node := lockAgent(t)
	held, err := w.Acquire(t.Context(), "db", 1)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	l := startLock(t, "--api", sock, "db", "--", "touch", marker)
	waitUntil(t, "the lock queued", func() (bool, error) { return waiters(node, "db") == 1, nil })
	l.signal(os.Interrupt)
	if code := l.exitCode(lockWait); code != exitStopped || !strings.Contains(l.output(), "interrupted while waiting") {
		t.Errorf("interrupted: exit %d, output %q; want %d", code, l.output(), exitStopped)
	}
	waitUntil(t, "the queue empty", func() (bool, error) { return waiters(node, "db") == 0, nil })

	code, _, stderr := graft(t, "lock", "--api", sock, "--timeout", "100ms", "db", "--", "touch", marker)
	if code != exitLockTimeout || !strings.Contains(stderr, "no slot within 100ms") {
		t.Errorf("timed out: exit %d, stderr %q; want %d", code, stderr, exitLockTimeout)
	}
	waitUntil(t, "the queue empty", func() (bool, error) { return waiters(node, "db") == 0, nil })
	if err := held.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := holders(node, "db"); n != 0 {
		t.Errorf("%d holders after the release: a lock that gave up was granted", n)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the command ran: %v", err)
	}
}

// A slot lost while the command runs (the cluster declared the host
// dead) terminates the command with SIGTERM; graft lock says so and exits
// 75.
func TestLockLostTerminatesTheCommand(t *testing.T) {
	sock, _, node := lockAgent(t)
	log := filepath.Join(t.TempDir(), "log")
	script := `trap 'echo TERM >> "$1"; exit 0' TERM; echo started >> "$1"; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done`
	l := startLock(t, "--api", sock, "db", "--", "sh", "-c", script, "sh", log)
	waitLog(t, log, "started")
	if _, err := node.Apply(t.Context(), []fsm.Command{{Op: fsm.OpExpireNode, Node: "node0"}}); err != nil {
		t.Fatal(err)
	}
	if code := l.exitCode(lockWait); code != exitLockLost || !strings.Contains(l.output(), "lost") || !strings.Contains(l.output(), "SIGTERM") {
		t.Errorf("exit %d, output %q; want %d and a word of the loss", code, l.output(), exitLockLost)
	}
	waitLog(t, log, "TERM")
}

// A stop signal to graft lock while its command runs is passed on to the
// command as SIGTERM; lock then gives the slot back and exits as the
// command did.
func TestLockPassesAStopOnToTheCommand(t *testing.T) {
	sock, _, node := lockAgent(t)
	log := filepath.Join(t.TempDir(), "log")
	script := `trap 'echo TERM >> "$1"; exit 7' TERM; echo started >> "$1"; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done`
	l := startLock(t, "--api", sock, "db", "--", "sh", "-c", script, "sh", log)
	waitLog(t, log, "started")
	l.signal(syscall.SIGTERM)
	if code := l.exitCode(lockWait); code != 7 {
		t.Errorf("exit %d, output %q; want the command's 7", code, l.output())
	}
	waitLog(t, log, "TERM")
	if n := holders(node, "db"); n != 0 {
		t.Errorf("%d holders after the lock exited", n)
	}
}

// A graft lock killed outright (SIGKILL) takes its command down with it
// (SIGTERM), and its agent gives the slot back as its connection closes.
func TestLockKilledStopsTheCommandAndFreesTheSlot(t *testing.T) {
	sock, _, node := lockAgent(t)
	log := filepath.Join(t.TempDir(), "log")
	script := `trap 'echo TERM >> "$1"; exit 0' TERM; echo started >> "$1"; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done`
	l := startLock(t, "--api", sock, "db", "--", "sh", "-c", script, "sh", log)
	waitLog(t, log, "started")
	l.signal(syscall.SIGKILL)
	waitLog(t, log, "TERM")
	waitUntil(t, "the slot given back", func() (bool, error) { return holders(node, "db") == 0, nil })
}
