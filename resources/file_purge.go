package resources

import (
	"path/filepath"
	"sync"
)

// managedPaths are the paths of the file resources of one registry that
// have been initialised and not yet cleaned up: the paths that a purge
// keeps. The engine initialises every vertex of a graph before it runs any
// of them, so a purge never runs before the graph's other files are known.
// A registry shared by several engines keeps their files all, which only
// makes a purge keep more.
type managedPaths struct {
	mu    sync.Mutex
	paths map[*File]string
}

func newManagedPaths() *managedPaths { return &managedPaths{paths: map[*File]string{}} }

func (m *managedPaths) add(f *File) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paths[f] = filepath.Clean(f.path())
}

func (m *managedPaths) remove(f *File) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.paths, f)
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
	for f, p := range m.paths {
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
