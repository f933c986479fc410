package resources

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// testRuntime is a Runtime whose signals are counted.
type testRuntime struct {
	engine.Runtime
	running, events atomic.Int32
	refresh         atomic.Bool
	eventCh         chan struct{}
	runningCh       chan struct{}
}

func newTestRuntime(kind, name string) *testRuntime {
	rt := &testRuntime{eventCh: make(chan struct{}, 1), runningCh: make(chan struct{}, 1)}
	rt.Runtime = engine.Runtime{
		ID:       engine.ID{Kind: kind, Name: name},
		Hostname: "test",
		Logger:   slog.New(slog.DiscardHandler),
		Running: func() {
			rt.running.Add(1)
			select {
			case rt.runningCh <- struct{}{}:
			default:
			}
		},
		Event: func() {
			rt.events.Add(1)
			select {
			case rt.eventCh <- struct{}{}:
			default:
			}
		},
		Refresh: rt.refresh.Load,
		Send:    func(map[string]any) error { return nil },
		Recv:    func() map[string]bool { return nil },
	}
	return rt
}

func strptr(s string) *string { return &s }

// newFile returns an initialised file resource.
func newFile(t *testing.T, f *File) *File {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := f.Init(&newTestRuntime("file", f.path()).Runtime); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return f
}

// converge runs CheckApply and wants the given checkOK.
func converge(t *testing.T, r engine.Res, apply, wantOK bool) {
	t.Helper()
	ok, err := r.CheckApply(t.Context(), apply)
	if err != nil {
		t.Fatalf("CheckApply(apply=%t): %v", apply, err)
	}
	if ok != wantOK {
		t.Fatalf("CheckApply(apply=%t): got checkOK %t, want %t", apply, ok, wantOK)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func statT(t *testing.T, p string) (fs.FileInfo, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi, fi.Sys().(*syscall.Stat_t)
}

func TestFileCreatesWithParentsContentAndMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "f")
	f := newFile(t, &File{Path: p, Content: strptr("hello\n"), Mode: "0600"})

	converge(t, f, false, false) // noop: would create
	if _, err := os.Lstat(p); err == nil {
		t.Fatal("apply=false created the file")
	}
	converge(t, f, true, false)
	if got := readFile(t, p); got != "hello\n" {
		t.Errorf("content: got %q", got)
	}
	if fi, _ := statT(t, p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v, want 0600", fi.Mode().Perm())
	}
	converge(t, f, true, true)
}

func TestFileInStateIsUntouched(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f := newFile(t, &File{Path: p, Content: strptr("x"), State: "exists"})
	converge(t, f, true, false)
	fi1, st1 := statT(t, p)
	converge(t, f, true, true)
	fi2, st2 := statT(t, p)
	if st1.Ino != st2.Ino || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("a file already in state was rewritten")
	}
}

func TestFileRepairsContentKeepingModeAndOwner(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("drifted"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, &File{Path: p, Content: strptr("wanted")})
	converge(t, f, false, false)
	if got := readFile(t, p); got != "drifted" {
		t.Fatal("apply=false changed the content")
	}
	converge(t, f, true, false)
	if got := readFile(t, p); got != "wanted" {
		t.Errorf("content: got %q", got)
	}
	if fi, _ := statT(t, p); fi.Mode().Perm() != 0o640 {
		t.Errorf("unmanaged mode changed to %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// Same length, different bytes.
	if err := os.WriteFile(p, []byte("wantex"), 0o640); err != nil {
		t.Fatal(err)
	}
	converge(t, f, true, false)
	converge(t, f, true, true)
}

func TestFileAbsent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, &File{Path: p, State: "absent"})
	converge(t, f, false, false)
	converge(t, f, true, false)
	if _, err := os.Lstat(p); err == nil {
		t.Fatal("file not removed")
	}
	converge(t, f, true, true)

	// A directory declared as a file is only removed with force.
	d := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	f = newFile(t, &File{Path: d, State: "absent"})
	if _, err := f.CheckApply(t.Context(), true); err == nil || !strings.Contains(err.Error(), "force") {
		t.Errorf("got %v, want an error asking for force", err)
	}
	f = newFile(t, &File{Path: d + "/", State: "absent", Force: true})
	converge(t, f, true, false)
	if _, err := os.Lstat(d); err == nil {
		t.Fatal("directory not removed")
	}
}

func TestFileDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x", "d") + "/"
	f := newFile(t, &File{Path: p, State: "exists", Mode: "0750"})
	converge(t, f, true, false)
	fi, _ := statT(t, filepath.Clean(p))
	if !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("got %v, want a directory with mode 0750", fi.Mode())
	}
	converge(t, f, true, true)
	if err := os.Chmod(filepath.Clean(p), 0o777); err != nil {
		t.Fatal(err)
	}
	converge(t, f, true, false)
	if fi, _ := statT(t, filepath.Clean(p)); fi.Mode().Perm() != 0o750 {
		t.Errorf("mode not repaired: %v", fi.Mode().Perm())
	}
}

func TestFileWrongTypeNeedsForce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, &File{Path: p, Content: strptr("x")})
	if _, err := f.CheckApply(t.Context(), true); err == nil || !strings.Contains(err.Error(), "is a directory but the graph declares a file") {
		t.Fatalf("got %v, want a type mismatch error", err)
	}
	f = newFile(t, &File{Path: p, Content: strptr("x"), Force: true})
	converge(t, f, true, false)
	if got := readFile(t, p); got != "x" {
		t.Errorf("content: got %q", got)
	}
}

func TestFileUnmanagedExistence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f := newFile(t, &File{Path: p, Mode: "0600"})
	converge(t, f, true, true) // missing and not required: nothing to do
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	converge(t, f, true, false)
	if fi, _ := statT(t, p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v", fi.Mode().Perm())
	}
}

func TestFileOwnerAndGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; CI runs as root")
	}
	p := filepath.Join(t.TempDir(), "f")
	f := newFile(t, &File{Path: p, Content: strptr(""), Owner: "1234", Group: "2345", Mode: "u=rwxs,g=rx,o="})
	converge(t, f, true, false)
	fi, st := statT(t, p)
	if st.Uid != 1234 || st.Gid != 2345 {
		t.Errorf("owner: got %d:%d, want 1234:2345", st.Uid, st.Gid)
	}
	if want := fs.FileMode(0o750) | fs.ModeSetuid; permBits(fi.Mode()) != want {
		t.Errorf("mode: got %v, want %v (setuid must survive chown)", permBits(fi.Mode()), want)
	}
	converge(t, f, true, true)
	f = newFile(t, &File{Path: p, Owner: "root"})
	converge(t, f, true, false)
	if _, st := statT(t, p); st.Uid != 0 {
		t.Errorf("owner by name: got uid %d", st.Uid)
	}
	f = newFile(t, &File{Path: p, Owner: "no-such-user-graft"})
	if _, err := f.CheckApply(t.Context(), true); err == nil || !strings.HasPrefix(err.Error(), "owner:") {
		t.Errorf("unknown user: got %v", err)
	}
}

func TestFileValidate(t *testing.T) {
	for _, tc := range []struct {
		f    File
		want string
	}{
		{File{name: "relative"}, "path:"},
		{File{Path: "/", State: "absent", Force: true}, "state:"},
		{File{Path: "/tmp/x", State: "present"}, "state:"},
		{File{Path: "/tmp/x/", Content: strptr("")}, "content:"},
		{File{Path: "/tmp/x", Mode: "0999"}, "mode"},
		{File{Path: "/tmp/x", Mode: "q=r"}, "mode"},
	} {
		err := tc.f.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error starting %q", tc.f, err, tc.want)
		}
	}
	if err := (&File{name: "/tmp/from-name"}).Validate(); err != nil {
		t.Errorf("path from the name: %v", err)
	}
	// mgmt manages / itself (its mode, say); only removing or replacing it
	// is refused.
	if err := (&File{Path: "/", Mode: "0755"}).Validate(); err != nil {
		t.Errorf("path /: %v", err)
	}
}

// Watch reports deletion and overwriting of the file, and creation of its
// missing parents.
func TestFileWatchSeesDrift(t *testing.T) {
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(ctx) }()
	defer func() { cancel(); <-hubDone }()

	p := filepath.Join(t.TempDir(), "sub", "f")
	f := &File{Path: p, Content: strptr("x"), hub: hub}
	rt := newTestRuntime("file", p)
	if err := f.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	watchDone := make(chan error, 1)
	go func() { watchDone <- f.Watch(ctx) }()
	defer func() { cancel(); <-watchDone }()

	waitEvent := func(what string) {
		t.Helper()
		select {
		case <-rt.eventCh:
		case <-time.After(5 * time.Second):
			t.Fatalf("no event after %s", what)
		}
	}
	drain := func() {
		for len(rt.eventCh) > 0 {
			<-rt.eventCh
		}
	}
	select {
	case <-rt.runningCh:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not report running")
	}
	converge(t, f, true, false)
	waitEvent("create")
	drain()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitEvent("delete")
	converge(t, f, true, false)
	drain()
	if err := os.WriteFile(p, []byte("overwritten"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitEvent("overwrite")
	converge(t, f, true, false)
	if got := readFile(t, p); got != "x" {
		t.Errorf("content after repair: %q", got)
	}
}

// A path whose last element is "." or ".." names a directory without
// ending in "/": "/." with content and force was taken for a regular file
// of the wrong type, and CheckApply removed everything under /; "/etc/."
// with force replaced /etc. Such paths are refused, and / can only be a
// directory that is kept.
func TestFilePathThatCleansToRootOrEndsInDotIsRefused(t *testing.T) {
	for _, tc := range []struct {
		f    File
		want string
	}{
		{File{Path: "/.", Content: strptr("x"), Force: true}, `path: "/." ends in "."`},
		{File{Path: "/etc/..", Content: strptr("x"), Force: true}, `path: "/etc/.." ends in ".."`},
		{File{Path: "/etc/.", Force: true, State: "exists"}, `write the path plainly: "/etc/" for a directory, "/etc" for a file`},
		{File{name: "/etc/..", State: "absent", Force: true}, `path: "/etc/.." ends in ".."`},
		{File{Path: "/", Force: true, Mode: "0755"}, "force: / is never removed or replaced"},
		{File{Path: "//", Force: true}, "force: / is never removed or replaced"},
		{File{Path: "/", Content: strptr("x")}, "content:"},
	} {
		err := tc.f.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: Validate() = %v, want an error containing %q", tc.f.path(), err, tc.want)
		}
	}
	for _, p := range []string{"/", "/etc/./", "/etc/../", "/srv/./a", "/srv/../srv/a"} {
		if err := (&File{Path: p, Mode: "0755"}).Validate(); err != nil {
			t.Errorf("%q: Validate() = %v, want nil", p, err)
		}
	}
}

// chrootEnv names, in a sandboxed test's environment, the directory it
// takes for its /.
const chrootEnv = "GRAFT_TEST_CHROOT"

// Validate refuses every declaration that would remove /, but CheckApply
// must not rely on it. This runs in a sandbox whose / is a fresh directory
// (see inSandbox), and applies only once it has checked that it is there.
func TestFileCheckApplyNeverRemovesRoot(t *testing.T) {
	if !inSandbox(t) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "marker"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		runInSandbox(t, chrootEnv+"="+root)
		if _, err := os.Stat(filepath.Join(root, "marker")); err != nil {
			t.Errorf("the sandbox's / lost its content: %v", err)
		}
		return
	}
	root := os.Getenv(chrootEnv)
	if root == "" {
		t.Fatal(chrootEnv + " is not set: refusing to run without a chroot")
	}
	want, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chroot(root); err != nil {
		t.Fatalf("chroot: %v", err)
	}
	if err := os.Chdir("/"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Stat("/"); err != nil || !os.SameFile(got, want) {
		t.Fatalf("/ is not %s after chroot (%v): refusing to go on", root, err)
	}
	if _, err := os.Stat("/marker"); err != nil {
		t.Fatalf("/marker: %v: refusing to go on", err)
	}

	for _, f := range []*File{
		{Path: "/.", Content: strptr("x"), Force: true}, // a file of the wrong type
		{Path: "/", State: "absent", Force: true},
	} {
		if err := f.Init(&newTestRuntime("file", f.Path).Runtime); err != nil {
			t.Fatal(err)
		}
		_, err := f.CheckApply(t.Context(), true)
		if err == nil || !strings.Contains(err.Error(), "refusing to remove /") {
			t.Errorf("%q (state %q): CheckApply = %v, want it to refuse to remove /", f.Path, f.State, err)
		}
		if _, err := os.Stat("/marker"); err != nil {
			t.Fatalf("%q (state %q): CheckApply removed what is under /: %v", f.Path, f.State, err)
		}
	}
}
