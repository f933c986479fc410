package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

// nobody is the user the tests run another user's processes as.
const nobody = 65534

// needRoot skips a test that acts as another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test acts as another user (uid 65534), and only root can")
	}
}

// privateDataDir makes dir/.graft as graft makes a data dir (mode 0700)
// and listens on its API socket; it returns the data dir.
func privateDataDir(t *testing.T, dir string) string {
	t.Helper()
	dd := filepath.Join(dir, checkoutDataDir)
	if err := os.MkdirAll(dd, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := api.ListenUnix(filepath.Join(dd, apiSocket))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return dd
}

// openTempDir returns a new directory, mode 0755, removed when the test
// ends: unlike t.TempDir, other users can enter it, and its path is short
// enough for sockets in it whatever the test's name.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "graft-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return mkdir(t, dir, 0o755)
}

// mkdir makes dir with mode perm, whatever the umask.
func mkdir(t *testing.T, dir string, perm os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A .graft that is a symbolic link is not followed, even to a private data
// dir of the user's own with an agent on it: anyone who can write to the
// link's directory can repoint it between the check and the dial (or a
// later reconnect) to a socket of theirs.
func TestGraftSymlinkIsNotFollowed(t *testing.T) {
	base := openTempDir(t)
	dd := privateDataDir(t, mkdir(t, filepath.Join(base, "real"), 0o755))
	checkout := mkdir(t, filepath.Join(base, "checkout"), 0o755)
	if err := os.Symlink(dd, filepath.Join(checkout, checkoutDataDir)); err != nil {
		t.Fatal(err)
	}
	s := findCheckoutAgent(t.Context(), checkout)
	if s.sock != "" {
		t.Fatalf("the search followed the symbolic link %s to %s", filepath.Join(checkout, checkoutDataDir), s.sock)
	}
	if len(s.rejected) != 1 || !strings.Contains(s.rejected[0], filepath.Join(checkout, checkoutDataDir)) ||
		!strings.Contains(s.rejected[0], "symbolic link") {
		t.Errorf("rejected %q; want the link named as a symbolic link", s.rejected)
	}
}

// The search for make run's agent stops below a directory another user
// can write to (as /tmp) or that belongs to another user than this one or
// root: a .graft there, or one swapped in, could be anyone's. A directory
// writable by the user's own group (a user private group, umask 002) is
// trusted.
func TestSearchForMakeRunsAgentStopsBelowADirectoryOthersCanWrite(t *testing.T) {
	stopsAt := func(t *testing.T, shared string) {
		t.Helper()
		privateDataDir(t, shared)
		below := mkdir(t, filepath.Join(shared, "x"), 0o755)
		s := findCheckoutAgent(t.Context(), below)
		if s.sock != "" {
			t.Errorf("found %s, in a directory others can write to", s.sock)
		}
		if !strings.Contains(s.stopped, shared) {
			t.Errorf("stopped %q; want it to name %s", s.stopped, shared)
		}
	}
	t.Run("world-writable", func(t *testing.T) {
		stopsAt(t, mkdir(t, filepath.Join(openTempDir(t), "tmp"), 0o777|os.ModeSticky))
	})
	t.Run("another user's", func(t *testing.T) {
		needRoot(t)
		shared := mkdir(t, filepath.Join(openTempDir(t), "theirs"), 0o755)
		if err := os.Chown(shared, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		stopsAt(t, shared)
	})
	t.Run("writable by another group", func(t *testing.T) {
		needRoot(t)
		shared := mkdir(t, filepath.Join(openTempDir(t), "group"), 0o775)
		if err := os.Chown(shared, os.Geteuid(), nobody); err != nil {
			t.Fatal(err)
		}
		stopsAt(t, shared)
	})
	t.Run("writable by the user's own group", func(t *testing.T) {
		checkout := mkdir(t, filepath.Join(openTempDir(t), "checkout"), 0o775)
		if err := os.Chown(checkout, os.Geteuid(), os.Getegid()); err != nil {
			t.Fatal(err)
		}
		dd := privateDataDir(t, checkout)
		below := mkdir(t, filepath.Join(checkout, "x"), 0o755)
		if s := findCheckoutAgent(t.Context(), below); s.sock != filepath.Join(dd, apiSocket) {
			t.Errorf("found %+v, want %s", s, filepath.Join(dd, apiSocket))
		}
	})
}

// noDefaultAgent points the default data dir of the test's client
// commands (those that name no agent) at a fresh HOME, and makes sure
// nothing answers there: root's default data dir cannot be moved.
func noDefaultAgent(t *testing.T) {
	t.Helper()
	clearGraftEnv(t)
	t.Setenv("HOME", openTempDir(t))
	os.Unsetenv("XDG_STATE_HOME")
	sock := filepath.Join(defaultDataDir(), apiSocket)
	if conn, err := net.Dial("unix", sock); err == nil {
		conn.Close()
		t.Skipf("an agent answers at the default data dir's socket %s, which this test needs free", sock)
	}
}

// A .graft found and not used is named in the error, with the reason:
// the error said no .graft had been found at all.
func TestAGraftDirNotUsedIsNamedWithWhy(t *testing.T) {
	noDefaultAgent(t)
	checkout := mkdir(t, filepath.Join(openTempDir(t), "checkout"), 0o755)
	dd := privateDataDir(t, checkout)
	if err := os.Chmod(dd, 0o770); err != nil {
		t.Fatal(err)
	}
	t.Chdir(checkout)
	code, _, stderr := graft(t, "status")
	want := "graft: found " + dd + " but did not use it: it is open to other users (mode 0770), and graft makes its data dir 0700\n"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "nor did graft find") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
	}
}

// In a checkout so deep that the absolute path of make run's socket is
// longer than a unix socket address holds (make run's agent listens on
// the relative .graft/graft.sock, which fits), the client commands reach
// the agent: they failed with "connect: invalid argument", and then looked
// in the default data dir.
func TestClientCommandsReachMakeRunsAgentInADeepCheckout(t *testing.T) {
	noDefaultAgent(t)
	checkout := mkdir(t, filepath.Join(openTempDir(t), strings.Repeat("d", 50), strings.Repeat("e", 50)), 0o755)
	t.Chdir(checkout)
	mkdir(t, checkoutDataDir, 0o700)
	ln, err := api.ListenUnix(filepath.Join(checkoutDataDir, apiSocket))
	if err != nil {
		t.Fatal(err)
	}
	serveTestAPI(t, ln, nil)
	if n := len(filepath.Join(checkout, checkoutDataDir, apiSocket)); n <= 108 {
		t.Fatalf("the socket's path is only %d bytes", n)
	}
	if code, _, stderr := graft(t, "kv", "put", "deep", "yes"); code != 0 {
		t.Fatalf("kv put: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, stderr := graft(t, "kv", "get", "deep"); code != 0 || stdout != "yes" {
		t.Errorf("kv get: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// testBinary returns a copy of the test binary (which runs as graft with
// GRAFT_TEST_BINARY=1) that other users can run: the go tool keeps the
// binary in a directory only we can enter.
func testBinary(t *testing.T) string {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(openTempDir(t), "graft")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// graftAs runs graft as user uid in dir, with HOME set to home and no
// GRAFT_ variable, and returns its exit code and stderr.
func graftAs(t *testing.T, bin string, uid int, dir, home string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	a := startProcess(t, cmd)
	return a.exitCode(60 * time.Second), a.output()
}

// A user's command run in a checkout where root's agent runs (`sudo make
// run` left .graft root's) says it found that .graft, why it did not use
// it, and what to do: it said no .graft had been found.
func TestARootGraftDirIsNamedToAnotherUser(t *testing.T) {
	needRoot(t)
	base := openTempDir(t)
	checkout := mkdir(t, filepath.Join(base, "checkout"), 0o755)
	dd := privateDataDir(t, checkout)
	below := mkdir(t, filepath.Join(checkout, "examples"), 0o755)
	code, out := graftAs(t, testBinary(t), nobody, below, filepath.Join(base, "home"), "status")
	want := "graft: found " + dd + " but did not use it: it belongs to user root (uid 0), not to you (uid 65534); " +
		"if root's agent runs on it (`sudo make run`), run this command with sudo too\n"
	if code != 1 || !strings.Contains(out, want) || strings.Contains(out, "nor did graft find") {
		t.Errorf("graft status as uid %d: exit %d, output:\n%s\nwant exit 1 and %q", nobody, code, out, want)
	}
}

// The reviewer's scenario: another user makes a world-writable directory's
// .graft a symbolic link to root's data dir (which passed the checks),
// root runs `graft kv put` below it, and the other user repoints the link
// to a socket of theirs, which received root's write. The search does not
// use the link (nor look in a world-writable directory), and the client
// does not talk to a socket another user serves, even given its path.
func TestRootsWriteDoesNotReachAnotherUsersSocketThroughAGraftLink(t *testing.T) {
	needRoot(t)
	clearGraftEnv(t)
	base := openTempDir(t)
	// Root's agent.
	rootDD := mkdir(t, filepath.Join(base, "var-lib-graft"), 0o700)
	ln, err := api.ListenUnix(filepath.Join(rootDD, apiSocket))
	if err != nil {
		t.Fatal(err)
	}
	serveTestAPI(t, ln, nil)
	// The other user's agent, a real graft run as that user.
	theirs := mkdir(t, filepath.Join(base, "theirs"), 0o700)
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	bin := testBinary(t)
	cmd := exec.Command(bin, testClusterAddr([]string{"run", "--data-dir", filepath.Join(theirs, "data")})...)
	cmd.Env = []string{"HOME=" + theirs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	impostor := startProcess(t, cmd)
	impostor.waitLog(60*time.Second, "local API listening")
	theirSock := filepath.Join(theirs, "data", apiSocket)

	// The shared directory, as /tmp, with the link to root's data dir.
	tmp := mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky)
	link := filepath.Join(tmp, checkoutDataDir)
	if err := os.Symlink(rootDD, link); err != nil {
		t.Fatal(err)
	}
	below := mkdir(t, filepath.Join(tmp, "x"), 0o755)
	if s := findCheckoutAgent(t.Context(), below); s.sock != "" {
		t.Errorf("from %s the search used %s", below, s.sock)
	}
	// Repointed, and named outright.
	if err := errors.Join(os.Remove(link), os.Symlink(filepath.Join(theirs, "data"), link)); err != nil {
		t.Fatal(err)
	}
	for _, sock := range []string{filepath.Join(link, apiSocket), theirSock} {
		code, _, stderr := graft(t, "kv", "put", "--api", sock, "secret", "hunter2")
		if code != 1 || !strings.Contains(stderr, sock) || !strings.Contains(stderr, "user nobody (uid 65534)") {
			t.Errorf("kv put --api %s: exit %d, stderr %q; want 1, naming the socket and its user", sock, code, stderr)
		}
	}
	// The other user's agent holds no such key (asked as that user).
	code, out := graftAs(t, bin, nobody, theirs, theirs, "kv", "get", "--api", theirSock, "secret")
	if code != 1 || !strings.Contains(out, `key "secret" not found`) {
		t.Errorf("the other user's agent: kv get secret: exit %d, output %q; want no such key", code, out)
	}
}
