package fswatch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// limitChildEnv makes the test binary run limitChild instead of the tests:
// the parent lowers a limit for that child alone and reads what it printed.
const limitChildEnv = "FSWATCH_TEST_LIMIT_CHILD"

// limitChild hits one limit for real and prints the error it got, then the
// limit the *LimitError named. It runs in its own user namespace, whose
// inotify limits (/proc/sys/user/max_inotify_*) bind only the processes in
// it, so lowering them there leaves every other process on the host alone.
func limitChild(mode string) error {
	var err error
	switch mode {
	case "instances":
		if err := os.WriteFile("/proc/sys/user/max_inotify_instances", []byte("0"), 0); err != nil {
			return err
		}
		_, err = New(nil)
	case "watches":
		if err := os.WriteFile("/proc/sys/user/max_inotify_watches", []byte("1"), 0); err != nil {
			return err
		}
		h, nerr := New(nil)
		if nerr != nil {
			return nerr
		}
		defer h.Close()
		if _, werr := h.Watch(filepath.Join(os.Getenv(limitChildEnv+"_DIR"), "a", "f"), func() {}); werr != nil {
			return fmt.Errorf("the first watch failed: %w", werr)
		}
		_, err = h.Watch("/proc/self/f", func() {})
	case "files":
		// Below the descriptors already open: the next one fails.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 3, Max: 3}); err != nil {
			return err
		}
		_, err = New(nil)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err == nil {
		return errors.New("no error: the limit was not reached")
	}
	var le *LimitError
	limit := "none"
	if errors.As(err, &le) {
		limit = le.Limit
	}
	fmt.Printf("%v\nlimit=%s\n", err, limit)
	return nil
}

// runLimitChild runs limitChild(mode) in a new process, in a user namespace
// of its own when userns is set, and returns its error and limit lines.
func runLimitChild(t *testing.T, mode string, userns bool) (msg, limit string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), limitChildEnv+"="+mode, limitChildEnv+"_DIR="+t.TempDir())
	if userns {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case userns && err != nil && !errors.As(err, &ee):
		t.Skipf("this machine does not let a process start in a new user namespace (%v); "+
			"the test needs one to lower inotify limits for its child alone", err)
	case err != nil:
		t.Fatalf("child %s: %v\n%s%s", mode, err, out, stderrOf(err))
	}
	msg, limit, _ = strings.Cut(strings.TrimSpace(string(out)), "\nlimit=")
	return msg, limit
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// Running out of inotify watches gave "no space left on device", which
// sends users to df. The error names the sysctl that binds (here the user
// namespace's, lower than the host's) and how to raise it.
func TestWatchLimitErrorNamesTheSysctl(t *testing.T) {
	msg, limit := runLimitChild(t, "watches", true)
	// The child's namespace limit is the lower: that is the one named.
	if limit != LimitNSWatches {
		t.Errorf("limit %q, want %q; error: %s", limit, LimitNSWatches, msg)
	}
	for _, want := range []string{"no space left on device", "sysctl user.max_inotify_watches (now 1) is reached",
		"user namespace", "sysctl -w user.max_inotify_watches=524288", "/etc/sysctl.d/"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// Running out of inotify instances gave "too many open files". The error
// names the sysctl and how to raise it.
func TestInstanceLimitErrorNamesTheSysctl(t *testing.T) {
	msg, limit := runLimitChild(t, "instances", true)
	if limit != LimitNSInstances {
		t.Errorf("limit %q, want %q; error: %s", limit, LimitNSInstances, msg)
	}
	for _, want := range []string{"too many open files", "sysctl user.max_inotify_instances (now 0) is reached",
		"sysctl -w user.max_inotify_instances=512"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// The same EMFILE comes from the process's own limit on open files; then
// raising the sysctl would not help, and the error says so.
func TestOpenFilesLimitIsNotBlamedOnInotify(t *testing.T) {
	msg, limit := runLimitChild(t, "files", false)
	if limit != LimitOpenFiles {
		t.Errorf("limit %q, want %q; error: %s", limit, LimitOpenFiles, msg)
	}
	if !strings.Contains(msg, "ulimit -n") || strings.Contains(msg, "sysctl") {
		t.Errorf("error %q should point at ulimit -n, not a sysctl", msg)
	}
}
