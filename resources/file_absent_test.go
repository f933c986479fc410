package resources

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newLoggedFile returns an initialised file resource whose log is recorded.
func newLoggedFile(t *testing.T, f *File) (*File, *logRecorder) {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	logs := &logRecorder{}
	rt := newTestRuntime("file", f.path())
	rt.Logger = slog.New(logs)
	if err := f.Init(&rt.Runtime); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return f, logs
}

// Issue 9, item 3: state absent on a directory holding files removed the
// whole tree although force was not set.
func TestRemovingNonEmptyDirectoryNeedsForce(t *testing.T) {
	d := filepath.Join(t.TempDir(), "d")
	kept := filepath.Join(d, "sub", "precious")
	if err := os.MkdirAll(filepath.Dir(kept), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kept, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, &File{Path: d + "/", State: "absent"})
	for _, apply := range []bool{false, true} {
		_, err := f.CheckApply(t.Context(), apply)
		if !errors.Is(err, ErrNeedsForce) {
			t.Fatalf("CheckApply(apply=%t) = %v, want an error wrapping ErrNeedsForce", apply, err)
		}
		for _, want := range []string{d, "not empty", "force: true"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if _, err := os.Stat(kept); err != nil {
			t.Fatalf("CheckApply(apply=%t) without force removed the tree: %v", apply, err)
		}
	}

	f = newFile(t, &File{Path: d + "/", State: "absent", Force: true})
	converge(t, f, false, false)
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("apply=false removed the tree: %v", err)
	}
	converge(t, f, true, false)
	if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("with force the directory is still there: %v", err)
	}
	converge(t, f, true, true)

	// An empty directory needs no force.
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	f = newFile(t, &File{Path: d + "/", State: "absent"})
	converge(t, f, true, false)
	if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty directory is still there: %v", err)
	}
}

// Issue 9, item 4: mgmt accepts state absent together with content, mode,
// owner or group and ignores them (one of its shipped examples does this);
// graft refused the graph.
func TestAbsentFileWithContentModeOwnerGroupIsAccepted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f4")
	if err := os.WriteFile(p, []byte("i should not be here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: p, State: "absent", Content: strptr("i should not be here\n"),
		Mode: "0600", Owner: "no-such-user-graft", Group: "no-such-group-graft"}
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	ignored := f.IgnoredParams()
	for _, key := range []string{"content", "mode", "owner", "group"} {
		if !strings.Contains(ignored[key], "absent") {
			t.Errorf("IgnoredParams()[%q] = %q, want a reason naming state absent", key, ignored[key])
		}
	}
	if len(ignored) != 4 {
		t.Errorf("IgnoredParams() = %v, want exactly content, mode, owner and group", ignored)
	}
	f = newFile(t, f)
	converge(t, f, true, false) // the unknown owner is not looked up: it is ignored
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file is still there: %v", err)
	}

	// Only state absent makes them ignored.
	for _, f := range []*File{
		{Path: p, State: "exists", Content: strptr("x"), Mode: "0600"},
		{Path: p, Content: strptr("x"), Owner: "root"},
		{Path: p, State: "absent"},
	} {
		if got := f.IgnoredParams(); len(got) != 0 {
			t.Errorf("%+v: IgnoredParams() = %v, want none", f, got)
		}
	}
}
