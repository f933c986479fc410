package resources

import (
	"path/filepath"
	"sync"
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
