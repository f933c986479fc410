package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// privateTmpEnv, in a test binary's environment, names the test that
// runWithPrivateTmp runs in a mount namespace of its own.
const privateTmpEnv = "GRAFT_TEST_PRIVATE_TMP"

// runWithPrivateTmp runs test t again in a child process, in new user and
// mount namespaces, and reports true in that child once a tmpfs is mounted
// on /tmp and on /run/systemd there: what the test writes to those paths
// never reaches the host's. In the parent it waits for the child, fails t
// if the child failed, and reports false. A machine that cannot make the
// namespaces skips t.
func runWithPrivateTmp(t *testing.T) bool {
	t.Helper()
	if os.Getenv(privateTmpEnv) == t.Name() {
		// Nothing mounted here may reach the parent's namespace.
		if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			t.Fatalf("make mounts private: %v", err)
		}
		for _, dir := range []string{"/tmp", "/run/systemd"} {
			if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
				t.Fatalf("mount a tmpfs on %s: %v", dir, err)
			}
		}
		return true
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0],
		"-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), privateTmpEnv+"="+t.Name())
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
		t.Fatalf("in the namespace: %v\n%s", err, out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("the namespace did not run %s:\n%s", t.Name(), out)
	}
	return false
}

// runMgmtExample runs one of mgmt's examples once with graft run until it
// converges, wanting exit 0, and returns graft's log.
func runMgmtExample(t *testing.T, src []byte, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit", "yaml", p)
	if code != 0 {
		t.Fatalf("graft run %s: exit %d\n%s", name, code, stderr)
	}
	return stderr
}

// wantFile fails t unless path holds content.
func wantFile(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != content {
		t.Errorf("%s: %q, %v; want %q", path, b, err, content)
	}
}

// mgmt's examples that are safe to run do what they say, run as shipped,
// with /tmp (where they write) and /run/systemd (where the journal
// listens) private to the test.
func TestMgmtExamplesRunWithTheirDocumentedMeaning(t *testing.T) {
	// Read before /tmp is replaced: the checkout may be under it.
	src := map[string][]byte{}
	for _, name := range []string{"noop0.yaml", "graph0.yaml", "file1.yaml", "deep-dirs.yaml", "msg1.yaml", "autoedges1.yaml"} {
		src[name] = mgmtExample(t, name)
	}
	if !runWithPrivateTmp(t) {
		return
	}

	t.Run("noop0", func(t *testing.T) {
		runMgmtExample(t, src["noop0.yaml"], "noop0.yaml")
	})
	t.Run("graph0 writes hello world after the noop", func(t *testing.T) {
		runMgmtExample(t, src["graph0.yaml"], "graph0.yaml")
		wantFile(t, "/tmp/mgmt-hello-world", "hello world from @purpleidea\n")
	})
	t.Run("file1 writes three files and removes the fourth", func(t *testing.T) {
		if err := os.MkdirAll("/tmp/mgmt", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("/tmp/mgmt/f4", []byte("i was here\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		runMgmtExample(t, src["file1.yaml"], "file1.yaml")
		for _, n := range []string{"1", "2", "3"} {
			wantFile(t, "/tmp/mgmt/f"+n, "i am f"+n+"\n")
		}
		if _, err := os.Lstat("/tmp/mgmt/f4"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/tmp/mgmt/f4 is still there (%v)", err)
		}
	})
	t.Run("deep-dirs makes the missing directories", func(t *testing.T) {
		runMgmtExample(t, src["deep-dirs.yaml"], "deep-dirs.yaml")
		wantFile(t, "/tmp/mgmt/a/b/c/f1", "i am f1\n")
	})
	t.Run("autoedges1 makes the directory and the file below it", func(t *testing.T) {
		log := runMgmtExample(t, src["autoedges1.yaml"], "autoedges1.yaml")
		if fi, err := os.Stat("/tmp/foo"); err != nil || !fi.IsDir() {
			t.Errorf("/tmp/foo is not a directory: %v", err)
		}
		wantFile(t, "/tmp/foo/bar/f1", "i am f1\n")
		// The automatic edge: the directory's resource runs first.
		i, j := strings.Index(log, "resource applied\" resource=file[file2]"), strings.Index(log, "resource applied\" resource=file[file1]")
		if i < 0 || j < 0 || i > j {
			t.Errorf("graft's log does not have file2 (/tmp/foo/) applied before file1:\n%s", log)
		}
	})
	t.Run("msg1 sends its body to the journal", func(t *testing.T) {
		if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
			t.Fatal(err)
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "/run/systemd/journal/socket", Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		log := runMgmtExample(t, src["msg1.yaml"], "msg1.yaml")
		if !strings.Contains(log, "mgmt logged this message") {
			t.Errorf("graft's log lacks the message:\n%s", log)
		}
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<16)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("nothing reached the journal: %v", err)
		}
		entry := string(buf[:n])
		for _, want := range []string{"MESSAGE=mgmt logged this message\n", "PRIORITY=5\n"} {
			if !strings.Contains(entry, want) {
				t.Errorf("the journal got %q, want it to hold %q", entry, want)
			}
		}
	})
}
