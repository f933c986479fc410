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

// utsSandboxEnv, in a test binary's environment, names the test it runs in
// the namespaces that runInUTSSandbox made for it.
const utsSandboxEnv = "GRAFT_TEST_UTS_SANDBOX"

// inUTSSandbox reports whether this process is the copy of test t that
// runInUTSSandbox runs. If so, the process has a UTS namespace of its own
// (its host name is its own) and a mount namespace in which it mounts a
// tmpfs over /etc (holding only copies of passwd, group and
// nsswitch.conf), so that /etc/hostname and /etc/machine-info are
// its own too.
func inUTSSandbox(t *testing.T) bool {
	t.Helper()
	if os.Getenv(utsSandboxEnv) != t.Name() {
		return false
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	// The user and group databases stay: dbus-daemon needs them.
	keep := map[string][]byte{}
	for _, name := range []string{"passwd", "group", "nsswitch.conf"} {
		if b, err := os.ReadFile("/etc/" + name); err == nil {
			keep[name] = b
		}
	}
	if err := syscall.Mount("tmpfs", "/etc", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs over /etc: %v", err)
	}
	for name, b := range keep {
		if err := os.WriteFile("/etc/"+name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Sethostname([]byte("sandbox")); err != nil {
		t.Fatalf("sethostname: %v", err)
	}
	return true
}

// runInUTSSandbox runs test t again in a child process in new UTS and
// mount namespaces (and, unless the test runs as root, a user namespace in
// which the child is root), and fails t if the child's test failed. Nothing
// the child does to its host name or to /etc reaches this machine.
func runInUTSSandbox(t *testing.T) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0],
		"-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	// No system bus: a hostnamed of this machine must never be asked to
	// change its names. Tests that want one start their own.
	cmd.Env = append(os.Environ(), utsSandboxEnv+"="+t.Name(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/graft-test-no-bus")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS}
	if os.Getuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exitErr):
		t.Skipf("this machine cannot start a process in new UTS and mount namespaces: %v", err)
	case err != nil:
		t.Fatalf("in the sandbox: %v\n%s", err, out)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skipf("skipped in the sandbox:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("the sandbox did not run %s:\n%s", t.Name(), out)
	}
}
