package resources

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// sandboxEnv, in a test binary's environment, names the test it runs in the
// namespaces that inSandbox made for it.
const sandboxEnv = "GRAFT_TEST_SANDBOX"

// inSandbox reports whether this process is the copy of test t that
// runInSandbox runs; if so, it makes its mounts private first.
func inSandbox(t *testing.T) bool {
	t.Helper()
	if os.Getenv(sandboxEnv) != t.Name() {
		return false
	}
	// Nothing mounted here may reach the parent's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	return true
}

// runInSandbox runs test t again in a child process, in new user and mount
// namespaces in which the child is root and its mounts are its own, with
// env added to its environment, and fails t if the child's test failed. A
// machine without user namespaces skips t.
//
// The namespaces keep mounts (a tmpfs over /proc, say) out of the host; a
// test that must not touch the host's files chroots inside them.
func runInSandbox(t *testing.T, env ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0],
		"-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(os.Environ(), sandboxEnv+"="+t.Name()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exitErr):
		t.Skipf("this machine cannot start a process in new user and mount namespaces: %v", err)
	case err != nil:
		t.Fatalf("in the sandbox: %v\n%s", err, out)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skipf("skipped in the sandbox:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("the sandbox did not run %s:\n%s", t.Name(), out)
	}
}
