package resources

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write makes the file p (and its parents) hold s with mode.
func write(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: want it gone, Lstat says %v", p, err)
	}
}

func TestFileSourceCopiesAFileAndRepairsDriftOfSourceAndCopy(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "out", "dst")
	write(t, src, "one\n", 0o640)
	f, logs := newLoggedFile(t, &File{Path: dst, Source: src})

	converge(t, f, false, false) // noop: nothing made
	rec := only(t, logs.take(), "would change")
	if rec.attrs["action"] != "copy" || rec.attrs["from"] != src || strings.Contains(rec.attrs["bytes"], "one") {
		t.Errorf("noop logged %v", rec.attrs)
	}
	mustNotExist(t, dst)

	converge(t, f, true, false)
	if got := readFile(t, dst); got != "one\n" {
		t.Fatalf("copy holds %q", got)
	}
	if fi, _ := statT(t, dst); fi.Mode().Perm() != 0o640 {
		t.Errorf("new copy has mode %v, want the source's 0640", fi.Mode().Perm())
	}
	converge(t, f, true, true) // idempotent

	write(t, src, "two\n", 0o640) // the source changes
	converge(t, f, true, false)
	if got := readFile(t, dst); got != "two\n" {
		t.Errorf("after a source edit the copy holds %q", got)
	}
	write(t, dst, "drift\n", 0o640) // the copy drifts
	converge(t, f, true, false)
	if got := readFile(t, dst); got != "two\n" {
		t.Errorf("after drift the copy holds %q", got)
	}
	converge(t, f, true, true)
}

func TestFileSourceMissingIsAnErrorNotAnEmptyCopy(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst") + "/"
	write(t, filepath.Join(dst, "keep"), "x", 0o644)
	f := newFile(t, &File{Path: dst, Source: filepath.Join(dir, "nope") + "/", Recurse: true, Purge: true})
	if _, err := f.CheckApply(t.Context(), true); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckApply with a missing source: %v, want not-exist", err)
	}
	if got := readFile(t, filepath.Join(dst, "keep")); got != "x" {
		t.Errorf("a missing source purged the copy: %q", got)
	}
}

// srcTree makes a source tree: a file, a nested file, an executable and a
// symlink that points outside the tree.
func srcTree(t *testing.T, root, outside string) {
	t.Helper()
	write(t, filepath.Join(root, "a"), "A", 0o644)
	write(t, filepath.Join(root, "sub", "b"), "B", 0o600)
	write(t, filepath.Join(root, "sub", "deep", "run"), "#!/bin/sh\n", 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
}

func TestFileSourceCopiesADirectoryTreeWithoutFollowingSymlinks(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/"
	outside := filepath.Join(dir, "outside")
	write(t, filepath.Join(outside, "secret"), "S", 0o600)
	srcTree(t, src, outside)
	f, logs := newLoggedFile(t, &File{Path: dst, Source: src, Recurse: true})

	converge(t, f, false, false)
	only(t, logs.take(), "would change")
	mustNotExist(t, dst)

	converge(t, f, true, false)
	for rel, want := range map[string]string{"a": "A", "sub/b": "B", "sub/deep/run": "#!/bin/sh\n"} {
		if got := readFile(t, filepath.Join(dst, rel)); got != want {
			t.Errorf("%s holds %q, want %q", rel, got, want)
		}
	}
	if fi, _ := statT(t, filepath.Join(dst, "sub", "deep", "run")); fi.Mode().Perm() != 0o755 {
		t.Errorf("copied executable has mode %v", fi.Mode().Perm())
	}
	if target, err := os.Readlink(filepath.Join(dst, "out")); err != nil || target != outside {
		t.Errorf("symlink copied as %q, %v; want a link to %s", target, err, outside)
	}
	converge(t, f, true, true)

	// Drift: the source gains a file, a copied file is edited, the copy
	// gains a file of its own (kept: no purge).
	write(t, filepath.Join(src, "sub", "new"), "N", 0o644)
	write(t, filepath.Join(dst, "a"), "edited", 0o644)
	write(t, filepath.Join(dst, "mine"), "M", 0o644)
	converge(t, f, false, false)
	recs := logs.take()
	if n := countMsg(recs, "would change"); n != 2 {
		t.Errorf("noop logged %d changes, want 2 (copy a, copy sub/new): %v", n, recs)
	}
	converge(t, f, true, false)
	if got := readFile(t, filepath.Join(dst, "a")); got != "A" {
		t.Errorf("edited copy not repaired: %q", got)
	}
	if got := readFile(t, filepath.Join(dst, "sub", "new")); got != "N" {
		t.Errorf("new source file not copied: %q", got)
	}
	if got := readFile(t, filepath.Join(dst, "mine")); got != "M" {
		t.Errorf("without purge an extra file was touched: %q", got)
	}
	converge(t, f, true, true)
	if got := readFile(t, filepath.Join(outside, "secret")); got != "S" {
		t.Errorf("file outside the tree changed: %q", got)
	}
}

func TestFileSourceTreeReplacesWrongTypesOnlyWithForce(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/"
	write(t, filepath.Join(src, "sub", "b"), "B", 0o644)
	write(t, filepath.Join(dst, "sub"), "a file where the source has a directory", 0o644)
	f := newFile(t, &File{Path: dst, Source: src, Recurse: true})
	var fe *forceError
	if _, err := f.CheckApply(t.Context(), true); !errors.As(err, &fe) {
		t.Fatalf("CheckApply: %v, want a force error", err)
	}
	f = newFile(t, &File{Path: dst, Source: src, Recurse: true, Force: true})
	converge(t, f, true, false)
	if got := readFile(t, filepath.Join(dst, "sub", "b")); got != "B" {
		t.Errorf("after force: %q", got)
	}
}

func countMsg(recs []logRecord, msg string) int {
	n := 0
	for _, r := range recs {
		if r.msg == msg {
			n++
		}
	}
	return n
}
