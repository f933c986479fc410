package resources

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileFragmentsConcatenateFilesAndDirectoriesInOrder(t *testing.T) {
	dir := t.TempDir()
	head, fragDir := filepath.Join(dir, "head"), filepath.Join(dir, "conf.d")+"/"
	write(t, head, "head\n", 0o644)
	write(t, filepath.Join(fragDir, "20-b"), "b-secret\n", 0o644)
	write(t, filepath.Join(fragDir, "10-a"), "a\n", 0o644)
	write(t, filepath.Join(fragDir, "sub", "skipped"), "nested\n", 0o644)
	if err := os.Symlink(head, filepath.Join(fragDir, "30-link")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out")
	f, logs := newLoggedFile(t, &File{Path: dst, Fragments: []string{head, fragDir}})

	converge(t, f, false, false)
	for _, r := range logs.take() {
		for _, v := range r.attrs {
			if strings.Contains(v, "secret") {
				t.Errorf("noop logged content: %v", r.attrs)
			}
		}
	}
	mustNotExist(t, dst)
	converge(t, f, true, false)
	if got, want := readFile(t, dst), "head\na\nb-secret\n"; got != want {
		t.Fatalf("content %q, want %q", got, want)
	}
	converge(t, f, true, true)

	write(t, head, "HEAD\n", 0o644) // a fragment changes
	converge(t, f, true, false)
	write(t, filepath.Join(fragDir, "15-new"), "new\n", 0o644) // a fragment appears
	converge(t, f, true, false)
	write(t, dst, "drift", 0o644) // the result drifts
	converge(t, f, true, false)
	if got, want := readFile(t, dst), "HEAD\na\nnew\nb-secret\n"; got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	converge(t, f, true, true)

	if err := os.Remove(head); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CheckApply(t.Context(), true); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "fragments[0]") {
		t.Errorf("missing fragment: %v", err)
	}
}

func TestFileSymlinkPointsAtSourceAndNeedsForceToReplaceAFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "link")
	f, logs := newLoggedFile(t, &File{Path: p, Source: "target-need-not-exist", Symlink: true})
	converge(t, f, false, false)
	if rec := only(t, logs.take(), "would change"); rec.attrs["action"] != "create" {
		t.Errorf("noop logged %v", rec.attrs)
	}
	mustNotExist(t, p)
	converge(t, f, true, false)
	if got, err := os.Readlink(p); err != nil || got != "target-need-not-exist" {
		t.Fatalf("link: %q, %v", got, err)
	}
	converge(t, f, true, true)

	if err := os.Remove(p); err != nil { // drift: another target
		t.Fatal(err)
	}
	if err := os.Symlink("/elsewhere", p); err != nil {
		t.Fatal(err)
	}
	converge(t, f, true, false)
	if got, _ := os.Readlink(p); got != "target-need-not-exist" {
		t.Errorf("retargeted link points at %q", got)
	}

	if err := os.Remove(p); err != nil { // drift: a regular file
		t.Fatal(err)
	}
	write(t, p, "file", 0o644)
	var fe *forceError
	if _, err := f.CheckApply(t.Context(), true); !errors.As(err, &fe) {
		t.Fatalf("replacing a file without force: %v", err)
	}
	forced := newFile(t, &File{Path: p, Source: "target-need-not-exist", Symlink: true, Force: true})
	converge(t, forced, true, false)
	if got, _ := os.Readlink(p); got != "target-need-not-exist" {
		t.Errorf("forced link points at %q", got)
	}

	absent := newFile(t, &File{Path: p, Symlink: true, State: stateAbsent})
	converge(t, absent, true, false)
	mustNotExist(t, p)
}

func TestFileDirnameAndBasenameOverrideThePath(t *testing.T) {
	for _, tc := range []struct {
		f    File
		want string
	}{
		{File{Path: "/a/b/c"}, "/a/b/c"},
		{File{Path: "/a/b/c", Dirname: "/x/"}, "/x/c"},
		{File{Path: "/a/b/c", Basename: "z"}, "/a/b/z"},
		{File{Path: "/a/b/c/", Dirname: "/x/y/"}, "/x/y/c/"},
		{File{Path: "/a/b/c", Dirname: "/x/", Basename: "z/"}, "/x/z/"},
		{File{name: "/n/m", Dirname: "/x/"}, "/x/m"},
	} {
		if got := tc.f.path(); got != tc.want {
			t.Errorf("%+v: path %q, want %q", tc.f, got, tc.want)
		}
	}
	dir := t.TempDir()
	f := newFile(t, &File{Path: "/not/used/f", Dirname: dir + "/", Content: strptr("x")})
	converge(t, f, true, false)
	if got := readFile(t, filepath.Join(dir, "f")); got != "x" {
		t.Errorf("file at the overridden path: %q", got)
	}
}

func TestFileValidateRefusesContradictorySourceParameters(t *testing.T) {
	for name, f := range map[string]File{
		"content and source":         {Path: "/a", Content: strptr(""), Source: "/b"},
		"source and fragments":       {Path: "/a", Source: "/b", Fragments: []string{"/c"}},
		"dir source, file path":      {Path: "/a", Source: "/b/", Recurse: true},
		"file source, dir path":      {Path: "/a/", Source: "/b"},
		"dir source without recurse": {Path: "/a/", Source: "/b/"},
		"recurse on one file":        {Path: "/a", Source: "/b", Recurse: true},
		"relative source":            {Path: "/a", Source: "b"},
		"source inside path":         {Path: "/a/", Source: "/a/b/", Recurse: true},
		"path inside source":         {Path: "/a/b/", Source: "/a/", Recurse: true},
		"relative fragment":          {Path: "/a", Fragments: []string{"b"}},
		"path in fragment dir":       {Path: "/d/a", Fragments: []string{"/d/"}},
		"fragments on a dir":         {Path: "/a/", Fragments: []string{"/b"}},
		"symlink without source":     {Path: "/a", Symlink: true},
		"symlink with recurse":       {Path: "/a", Source: "/b", Symlink: true, Recurse: true},
		"symlink dir":                {Path: "/a/", Source: "/b", Symlink: true},
		"dirname without slash":      {Path: "/a/b", Dirname: "/x"},
		"relative dirname":           {Path: "/a/b", Dirname: "x/"},
		"basename with slash":        {Path: "/a/b", Basename: "/x"},
		"absent with source":         {Path: "/a", Source: "/b", State: stateAbsent},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, f)
		}
	}
	for name, f := range map[string]File{
		"relative symlink target": {Path: "/a", Source: "../b", Symlink: true},
		"absent symlink":          {Path: "/a", Symlink: true, State: stateAbsent},
		"tree copy":               {Path: "/a/", Source: "/b/", Recurse: true, Purge: true},
	} {
		if err := f.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
}
