package resources

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TestFileTreeNeverWritesOrRemovesThroughADirectorySwappedForASymlink races
// a copy with purge against another process that keeps swapping a
// directory of the destination for a symlink out of the tree, and back:
// whatever the timing, nothing outside the tree is written or removed.
func TestFileTreeNeverWritesOrRemovesThroughADirectorySwappedForASymlink(t *testing.T) {
	dir := t.TempDir()
	src, dst, outside := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/", filepath.Join(dir, "outside")
	write(t, filepath.Join(src, "sub", "passwd"), "EVIL", 0o644)
	write(t, filepath.Join(outside, "passwd"), "P", 0o644)
	write(t, filepath.Join(outside, "precious"), "P", 0o644)
	f := newFile(t, &File{Path: dst, Source: src, Recurse: true, Purge: true, Force: true})
	converge(t, f, true, false)

	sub, saved := filepath.Join(dst, "sub"), filepath.Join(dir, "saved")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = os.RemoveAll(saved)
			_ = os.Rename(sub, saved)
			_ = os.Symlink(outside, sub)
			if i%2 == 0 {
				continue // leave the symlink for a while
			}
			_ = os.Remove(sub)
			_ = os.Mkdir(sub, 0o755)
		}
	})
	deadline := time.Now().Add(3 * time.Second)
	for n := 0; n < 2000 && time.Now().Before(deadline); n++ {
		_, _ = f.CheckApply(t.Context(), true) // errors are expected: the tree changes under it
		if readFile(t, filepath.Join(outside, "passwd")) != "P" {
			break
		}
		if _, err := os.Stat(filepath.Join(outside, "precious")); err != nil {
			break
		}
	}
	cancel()
	wg.Wait()
	if got := readFile(t, filepath.Join(outside, "passwd")); got != "P" {
		t.Errorf("the copy wrote through the symlink, out of the tree: outside/passwd is %q", got)
	}
	if _, err := os.Stat(filepath.Join(outside, "precious")); err != nil {
		t.Errorf("the purge removed through the symlink, out of the tree: %v", err)
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("outside holds %d entries, want its 2 own: %v", len(entries), entries)
	}
}

// TestFileSourceLinkedIntoThePathIsRefusedNotPurged declares a source that
// lexically lies apart from the path, but is a symlink into it: the copy
// would purge the source itself.
func TestFileSourceLinkedIntoThePathIsRefusedNotPurged(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst") + "/"
	write(t, filepath.Join(dst, "sub", "data"), "D", 0o644)
	if err := os.Symlink(filepath.Join(dst, "sub"), filepath.Join(dir, "src")); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, &File{Path: dst, Source: filepath.Join(dir, "src") + "/", Recurse: true, Purge: true})
	for _, apply := range []bool{false, true} {
		_, err := f.CheckApply(t.Context(), apply)
		if err == nil || !strings.Contains(err.Error(), "overlap") {
			t.Errorf("CheckApply(apply=%t): err %v, want one saying source and path overlap", apply, err)
		}
	}
	if got := readFile(t, filepath.Join(dst, "sub", "data")); got != "D" {
		t.Errorf("source content: %q", got)
	}
	mustNotExist(t, filepath.Join(dst, "data"))
}

// TestFileWatchNeverFollowsASymlinkCreatedInATree creates, in a watched
// tree, a symlink to a directory outside it (as a copied source symlink
// is): the watcher must not walk and watch what the link points to, which
// for a link to / would be every directory of the host.
func TestFileWatchNeverFollowsASymlinkCreatedInATree(t *testing.T) {
	dir := t.TempDir()
	tree, outside := filepath.Join(dir, "tree"), filepath.Join(dir, "outside")
	write(t, filepath.Join(outside, "deep", "f"), "x", 0o644)
	write(t, filepath.Join(tree, "f"), "x", 0o644)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	roots := []treeRoot{{tree, true}}
	if err := addRoots(w, roots); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tree, "link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if err := addCreated(w, roots, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range w.WatchList() {
		if p != tree {
			t.Errorf("watching %s, beyond the tree %s", p, tree)
		}
	}
}

// TestFileTreeNeverCopiesThroughASourceDirectorySwappedForASymlink races a
// copy against another process that keeps swapping a directory of the
// source for a symlink to a directory outside it: the copy may copy the
// link, never what is outside.
func TestFileTreeNeverCopiesThroughASourceDirectorySwappedForASymlink(t *testing.T) {
	dir := t.TempDir()
	src, dst, outside := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/", filepath.Join(dir, "outside")
	write(t, filepath.Join(src, "sub", "f"), "F", 0o644)
	write(t, filepath.Join(outside, "secret"), "S", 0o600)
	f := newFile(t, &File{Path: dst, Source: src, Recurse: true, Purge: true, Force: true})
	converge(t, f, true, false)

	sub, saved := filepath.Join(src, "sub"), filepath.Join(dir, "saved")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = os.Rename(sub, saved)
			_ = os.Symlink(outside, sub)
			_ = os.Remove(sub)
			_ = os.Rename(saved, sub)
		}
	})
	leaked := func() bool { // a copied link dst/sub -> outside is fine: look in a real dst/sub only
		d, err := os.Lstat(filepath.Join(dst, "sub"))
		if err != nil || !d.IsDir() {
			return false
		}
		fi, err := os.Lstat(filepath.Join(dst, "sub", "secret"))
		return err == nil && fi.Mode().IsRegular()
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && !leaked() {
		_, _ = f.CheckApply(t.Context(), true) // errors are expected: the tree changes under it
	}
	cancel()
	wg.Wait()
	if leaked() {
		t.Error("the copy read through the symlink: dst/sub/secret is a copy of outside/secret")
	}
}
