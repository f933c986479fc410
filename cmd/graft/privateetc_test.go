package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// privateEtcEnv, in a test binary's environment, names the test that
// runWithPrivateEtc runs in namespaces of its own.
const privateEtcEnv = "GRAFT_TEST_PRIVATE_ETC"

// overlaidDirs are the directories the child sees through an overlay whose
// writes land in a tmpfs: the account and name files in /etc, and where
// useradd may make a home, a mail spool, or note a login.
var overlaidDirs = []string{"/etc", "/home", "/var/log", "/var/mail"}

// accountFiles are the account databases, which other tests on this
// machine may change while this one runs (for accounts of their own).
var accountFiles = []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"}

// guardedFiles are the host's files that a private /etc must keep
// unchanged; runWithPrivateEtc compares them before and after.
var guardedFiles = append(slices.Clone(accountFiles), "/etc/hostname", "/etc/machine-info")

// runWithPrivateEtc runs test t again in a child process, as real root (the
// shadow tools refuse a root that a user namespace maps), in a new mount
// namespace and, with uts, a new UTS namespace. It reports true in that
// child once each of overlaidDirs is an overlay of itself whose writes land
// in a tmpfs, /tmp and /run/systemd are tmpfs, and no system bus is
// reachable: what the test changes in /etc stays in the child.
//
// In the parent it waits for the child, fails t if the child failed, and
// reports false. It fails t too if the host's name, /etc/hostname or
// /etc/machine-info changed meanwhile; changes to the host's account
// files are only logged (other tests add and remove accounts on the host,
// some named as the test's, given as names), and the child shows instead
// that its own writes landed in its overlay (wantInOverlay). The child's
// /etc shows the account files as they were when it started.
//
// It skips t where the machine cannot: not root, no overlayfs, or a kernel
// that refuses the namespaces.
func runWithPrivateEtc(t *testing.T, uts bool, names ...string) bool {
	t.Helper()
	if os.Getenv(privateEtcEnv) == t.Name() {
		enterPrivateEtc(t)
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: the shadow tools and sethostname need real root (the test keeps their writes in a private overlay of /etc)")
	}
	if fss, err := os.ReadFile("/proc/filesystems"); err != nil || !bytes.Contains(fss, []byte("\toverlay\n")) {
		t.Skipf("the kernel has no overlayfs (not in /proc/filesystems: %v)", err)
	}
	before := guardedState(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0],
		"-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	// No system bus: a hostnamed of this machine must never be asked to
	// change its names.
	cmd.Env = append(os.Environ(), privateEtcEnv+"="+t.Name(),
		"DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/graft-test-no-bus")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if uts {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUTS
	}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exitErr):
		t.Skipf("the kernel refuses a process new mount (and UTS) namespaces: %v", err)
	case err != nil:
		t.Errorf("in the namespaces: %v\n%s", err, out)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skipf("skipped in the namespaces:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Errorf("the namespaces did not run %s:\n%s", t.Name(), out)
	}
	compareHostState(t, before, guardedState(t), names)
	return false
}

// guardedState reads what runWithPrivateEtc guards: each of guardedFiles
// ("" for one absent) and, under "uname", the host's name.
func guardedState(t *testing.T) map[string]string {
	t.Helper()
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{"uname": name}
	for _, p := range guardedFiles {
		data, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		st[p] = string(data)
	}
	return st
}

// compareHostState fails t where after differs from before, except in
// accountFiles, whose changed lines it logs, marking those naming one of
// names.
func compareHostState(t *testing.T, before, after map[string]string, names []string) {
	t.Helper()
	for key, was := range before {
		now := after[key]
		if now == was {
			continue
		}
		if !slices.Contains(accountFiles, key) {
			t.Errorf("the host's %s changed: sha256 %x before, %x after", key, sha256.Sum256([]byte(was)), sha256.Sum256([]byte(now)))
			continue
		}
		// Other tests add and remove accounts on the host meanwhile, some
		// of the same names (resources' own run of user1 and group1): the
		// child proves its writes stayed private (wantInOverlay), and the
		// changes here are only noted.
		for _, line := range changedLines(was, now) {
			fields := strings.FieldsFunc(line, func(r rune) bool { return r == ':' || r == ',' })
			ours := slices.ContainsFunc(fields, func(f string) bool { return slices.Contains(names, f) })
			t.Logf("the host's %s changed meanwhile (another test's work; names an account of this test: %t): %q", key, ours, line)
		}
	}
}

// changedLines returns the lines that are in only one of a and b.
func changedLines(a, b string) []string {
	count := map[string]int{}
	for l := range strings.SplitSeq(a, "\n") {
		count[l]++
	}
	for l := range strings.SplitSeq(b, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		if n != 0 {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// enterPrivateEtc makes the child's mounts: see runWithPrivateEtc.
func enterPrivateEtc(t *testing.T) {
	t.Helper()
	// Nothing mounted here may reach the parent's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	for _, dir := range []string{"/tmp", "/run/systemd", "/run/dbus"} {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("mount a tmpfs on %s: %v", dir, err)
		}
	}
	scratch := "/tmp/graft-test-overlays"
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", scratch, err)
	}
	for i, dir := range overlaidDirs {
		// A symbolic link (/var/mail -> spool/mail, say) leads into a
		// directory overlaid already, or not at all.
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue
		}
		upper, work := filepath.Join(scratch, fmt.Sprint(i), "upper"), filepath.Join(scratch, fmt.Sprint(i), "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		lower := dir
		if dir == "/etc" {
			// The account files as they are now, above the live /etc:
			// accounts other tests add to the host meanwhile stay unseen.
			lower = snapshotAccounts(t, filepath.Join(scratch, "accounts")) + ":" + dir
		}
		opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
		if err := syscall.Mount("overlay", dir, "overlay", 0, opts); err != nil {
			t.Skipf("the kernel refuses an overlay on %s: %v", dir, err)
		}
	}
}

// snapshotAccounts copies accountFiles, with their modes and owners, into
// dir and returns it.
func snapshotAccounts(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range accountFiles {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(cp, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Chown(cp, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cp, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantInOverlay fails t unless the child's writes to /etc/name landed in
// the overlay's upper layer: proof they never reached the host's file
// (which the parent cannot check by comparing it, since other tests may
// change the host's accounts meanwhile).
func wantInOverlay(t *testing.T, name string) {
	t.Helper()
	upper := filepath.Join("/tmp/graft-test-overlays", fmt.Sprint(slices.Index(overlaidDirs, "/etc")), "upper", name)
	if _, err := os.Stat(upper); err != nil {
		t.Errorf("/etc/%s was not written in the private overlay: %v", name, err)
	}
}

// colonEntry returns the fields of the line of a colon file (/etc/passwd,
// /etc/group) whose first field is name, or nil.
func colonEntry(t *testing.T, file, name string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Split(line, ":"); f[0] == name {
			return f
		}
	}
	return nil
}
