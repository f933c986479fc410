package resources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// treeRoot is a directory whose entries a file resource watches: with
// recursive, every directory below it too.
type treeRoot struct {
	path      string
	recursive bool
}

// treeRoots are the directories whose entries matter: a source directory
// and the copy of it, a purged directory, and fragment directories.
func (f *File) treeRoots() []treeRoot {
	var out []treeRoot
	if f.Symlink {
		return nil
	}
	if f.Source != "" && f.sourceIsDir() {
		out = append(out, treeRoot{filepath.Clean(f.Source), true})
	}
	if f.isDir() && (f.Purge || (f.Source != "" && f.Recurse)) {
		out = append(out, treeRoot{filepath.Clean(f.path()), true})
	}
	for _, frag := range f.Fragments {
		if strings.HasSuffix(frag, "/") {
			out = append(out, treeRoot{filepath.Clean(frag), false})
		}
	}
	return out
}

func (f *File) watchesTrees() bool { return len(f.treeRoots()) > 0 }

// watchTrees reports every change to an entry of the tree roots, to the
// input files and to the roots themselves, until ctx ends. The shared hub
// watches single paths; the entries of directories need a watcher of
// their own, one inotify instance for this resource. It watches
// directories only, never following a symlink below a root.
func (f *File) watchTrees(ctx context.Context) error {
	w, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		return fmt.Errorf("file: watch directory trees: %w", err)
	}
	defer w.Close()
	roots := f.treeRoots()
	rescan := make(chan struct{}, 1)
	// A root that appears is watched before the event is reported, so a
	// change made inside it after the event is never missed.
	poke := func() {
		select {
		case rescan <- struct{}{}:
		default:
		}
	}
	for _, r := range roots {
		cancel, err := f.hub.Watch(r.path, poke) // a root that appears or goes
		if err != nil {
			return err
		}
		defer cancel()
	}
	for _, p := range f.inputFiles() {
		cancel, err := f.hub.Watch(p, f.rt.Event)
		if err != nil {
			return err
		}
		defer cancel()
	}
	if err := addRoots(w, roots); err != nil {
		return err
	}
	f.rt.Running()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file: directory watcher closed")
			}
			if ev.Has(fsnotify.Create) {
				if err := addCreated(w, roots, ev.Name); err != nil {
					return err
				}
			}
			f.rt.Event()
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file: directory watcher closed")
			}
			f.rt.Logger.Warn("directory watch error; rechecking", "err", err)
			poke()
		case <-rescan:
			if err := addRoots(w, roots); err != nil {
				return err
			}
			f.rt.Event()
		}
	}
}

// addRoots watches every root that exists and, for recursive ones, every
// directory below it.
func addRoots(w *fsnotify.Watcher, roots []treeRoot) error {
	for _, r := range roots {
		if err := addTree(w, r.path, r.recursive); err != nil {
			return err
		}
	}
	return nil
}

// addCreated watches p, just created, if it is a directory inside a
// recursive root (a directory renamed in comes with its subtree); never a
// symlink, which would lead the walk out of the tree.
func addCreated(w *fsnotify.Watcher, roots []treeRoot, p string) error {
	for _, r := range roots {
		if !r.recursive || !within(p, r.path) {
			continue
		}
		// Walked from p itself, not p+"/": a p that is a symlink (even one
		// swapped in since the event) is an entry, not followed.
		return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return ignoreGone(err)
			}
			if !d.IsDir() {
				return nil
			}
			return ignoreGone(w.Add(q))
		})
	}
	return nil
}

// addTree watches dir and, with recursive, the directories below it,
// without following symlinks below dir. A directory that vanishes during
// the walk is skipped: its removal was an event already.
func addTree(w *fsnotify.Watcher, dir string, recursive bool) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil // missing, or not a directory: the hub's watch of it says when that changes
	}
	if !recursive {
		return ignoreGone(w.Add(dir))
	}
	return filepath.WalkDir(dir+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return ignoreGone(err)
		}
		if !d.IsDir() {
			return nil
		}
		return ignoreGone(w.Add(p))
	})
}

func ignoreGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fsnotify.ErrNonExistentWatch) {
		return nil
	}
	return err
}
