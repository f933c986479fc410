package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// suite is what the tests of one test binary share: the graft binary built
// for them and the names of what they create. TestMain makes it before any
// test runs and never changes it after, but for the counter of networks.
type suite struct {
	// skip says why the tests cannot run here ("" if they can).
	skip string
	// bin is the graft binary, built once for every test.
	bin string
	// pid is this process's, in the name of everything the tests create,
	// so that leftovers say which run made them.
	pid int
	// networks counts the test networks made so far.
	networks atomic.Int32
}

// theSuite is set by TestMain, once, before any test runs.
var theSuite *suite

// TestMain builds the graft binary, removes what crashed earlier runs
// left, runs the tests, and fails the run if any namespace, bridge or
// graft process of its own is left at the end.
func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	s := &suite{pid: os.Getpid()}
	theSuite = s
	s.skip = prerequisites(s.pid)
	if s.skip != "" {
		return m.Run()
	}
	if err := removeLeftovers(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: removing an earlier run's leftovers: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tmpPrefix, s.pid))
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	s.bin = filepath.Join(dir, "graft")
	if err := buildGraft(s.bin); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	code := m.Run()
	if left := leftoversOf(s.pid, s.bin); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "integration: the run left behind:\n  %s\n", strings.Join(left, "\n  "))
		removeRun(s.pid)
		code = 1
	}
	return code
}

// prerequisites says what this machine lacks to run the tests, or "".
func prerequisites(pid int) string {
	if os.Geteuid() != 0 {
		return "the integration tests need root (they create network namespaces and a bridge)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the integration tests need the ip command (iproute2), which is not in PATH"
	}
	probe := fmt.Sprintf("%s%d-probe", namePrefix, pid)
	if err := ipCmd("netns", "add", probe); err != nil {
		return fmt.Sprintf("cannot create a network namespace here: %v", err)
	}
	if err := ipCmd("netns", "del", probe); err != nil {
		return fmt.Sprintf("cannot delete a network namespace here: %v", err)
	}
	return ""
}

// buildGraft builds ./cmd/graft into bin.
func buildGraft(bin string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building graft: the go command is not in PATH: %w", err)
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/graftcm/graft/cmd/graft")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building graft: %w\n%s", err, out)
	}
	return nil
}

// needSuite skips t, saying why, when the machine cannot run the tests.
func needSuite(t *testing.T) *suite {
	t.Helper()
	if theSuite.skip != "" {
		t.Skip(theSuite.skip)
	}
	return theSuite
}
