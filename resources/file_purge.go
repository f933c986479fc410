package resources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"weak"
)

// managedPaths are the paths of the file resources of one registry that
// have been validated (as a graph is loaded) or initialised, and not yet
// cleaned up: the paths that a purge keeps. Counting them from Validate,
// not only from Init, matters in a graph swap: the engine cleans up a
// replaced resource before it initialises its replacement, while a kept
// purge may be running. A resource that is validated but never runs (its
// graph refused later) is kept until it is garbage, hence the weak
// pointers. A registry shared by several engines keeps their files all,
// which only makes a purge keep more.
type managedPaths struct {
	mu    sync.Mutex
	paths map[weak.Pointer[File]]string
}

func newManagedPaths() *managedPaths {
	return &managedPaths{paths: map[weak.Pointer[File]]string{}}
}

func (m *managedPaths) add(f *File) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paths[weak.Make(f)] = filepath.Clean(f.path())
}

func (m *managedPaths) remove(f *File) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.paths, weak.Make(f))
}

// keepSet is what a purge of one directory keeps: the paths other file
// resources manage under it, and the directories on the way to them.
type keepSet struct {
	managed map[string]bool // managed by another resource: kept whole
	onWay   map[string]bool // a directory holding a managed path: purged inside
}

// keep returns the keepSet for a purge of dir by self.
func (m *managedPaths) keep(dir string, self *File) keepSet {
	k := keepSet{managed: map[string]bool{}, onWay: map[string]bool{}}
	if m == nil {
		return k
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for wf, p := range m.paths {
		f := wf.Value()
		if f == nil {
			delete(m.paths, wf) // garbage: never ran, or its graph was dropped
			continue
		}
		if f == self || !within(p, dir) {
			continue
		}
		k.managed[p] = true
		for q := filepath.Dir(p); within(q, dir); q = filepath.Dir(q) {
			k.onWay[q] = true
		}
	}
	return k
}

// ErrMountPoint is wrapped by the error of a purge, a copy with force, or
// any removal with force (state absent, a path of another type replaced),
// that would have removed a directory that is or holds a mount point.
var ErrMountPoint = errors.New("a directory holding a mount point is never removed")

// checkNoMount refuses the removal of the directory q (below the open root
// of the tree) if it or a directory below it is on another file system
// than the tree's root: a mount point, whose files a removal would wipe.
// What is mounted after the check is not seen.
func (t *tree) checkNoMount(q string) error {
	r := t.rel(q)
	if r == "" {
		return nil
	}
	top, err := t.root.Stat(".")
	if err != nil {
		return err
	}
	dev, _ := devOf(top)
	return fs.WalkDir(t.root.FS(), r, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return ignoreGone(err)
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return ignoreGone(err)
		}
		if pd, ok := devOf(fi); ok && pd != dev {
			return fmt.Errorf("%w: %s holds the mount point %s; declare it as a file resource to keep it, or unmount it",
				ErrMountPoint, q, filepath.Join(t.rootPath, p))
		}
		return nil
	})
}

// noMountIn refuses the removal of the directory p if it, or a directory
// below it, is a mount point: removing it would wipe the mounted file
// system. Symlinks are not followed. What is mounted after the check is
// not seen.
func noMountIn(p string) error {
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() {
		return nil // nothing to walk; the removal reports a missing path
	}
	dev, ok := devOf(fi)
	if !ok {
		return nil
	}
	if parent, err := os.Lstat(filepath.Dir(filepath.Clean(p))); err == nil {
		if pd, ok := devOf(parent); ok && pd != dev {
			return fmt.Errorf("%w: %s is a mount point; unmount it first", ErrMountPoint, p)
		}
	}
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return ignoreGone(err)
		}
		if !d.IsDir() || q == p {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return ignoreGone(err)
		}
		if qd, ok := devOf(fi); ok && qd != dev {
			return fmt.Errorf("%w: %s holds the mount point %s; unmount it first", ErrMountPoint, p, q)
		}
		return nil
	})
}

func devOf(fi fs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true
}
