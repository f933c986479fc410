package fswatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// dirSub is a WatchDir subscription: it hears of every entry of one
// directory, while the directory exists, through a watch on the directory
// itself; and of the directory appearing or vanishing, through self, an
// ordinary subscription to the directory's path.
type dirSub struct {
	path     string
	notify   func(name string)
	attached bool // in h.dirs[path].entries
	self     *sub
}

// dirWake is a notification due to a WatchDir subscriber.
type dirWake struct {
	ds   *dirSub
	name string
}

// WatchDir subscribes notify to changes of the entries of the directory
// path, which must be absolute: each entry created, removed, renamed,
// written, or with its mode or owner changed is notified with its name
// (the same entry may be notified more than once). The directory need not
// exist: it appearing, vanishing or being replaced is notified with the
// name "", and so is a recheck of everything after lost events. notify is
// called from the hub's goroutine and must not block. Call the returned
// function to unsubscribe.
func (h *Hub) WatchDir(path string, notify func(name string)) (cancel func(), err error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("fswatch: %q is not an absolute path", path)
	}
	ds := &dirSub{path: filepath.Clean(path), notify: notify}
	ds.self = &sub{target: ds.path, notify: func() {
		h.mu.Lock()
		h.placeDir(ds)
		h.mu.Unlock()
		ds.notify("")
	}}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("fswatch: hub is closed")
	}
	if _, err := h.place(ds.self); err != nil {
		return nil, err
	}
	h.subs[ds.self] = struct{}{}
	h.dsubs[ds] = struct{}{}
	if err := h.attachDir(ds); err != nil {
		delete(h.subs, ds.self)
		delete(h.dsubs, ds)
		h.detach(ds.self)
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs, ds.self)
			delete(h.dsubs, ds)
			h.detach(ds.self)
			h.detachDir(ds)
		})
	}, nil
}

// placeDir attaches ds to its directory if it exists and detaches it if it
// does not, logging what it cannot watch. Called with h.mu held.
func (h *Hub) placeDir(ds *dirSub) {
	if _, ok := h.dsubs[ds]; !ok {
		return // cancelled meanwhile
	}
	if err := h.attachDir(ds); err != nil {
		h.log.Warn("cannot watch directory", "path", ds.path, "err", err)
	}
}

// fileID tells one file from another on the same path.
type fileID struct{ dev, ino uint64 }

// dirID returns the identity of the directory at path; ok is false if there
// is none.
func dirID(path string) (id fileID, ok bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return fileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, true
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

// attachDir watches ds's directory for it, if the directory exists; it
// detaches ds if the directory is gone. A directory replaced by another
// (renamed over it) is watched anew: the kernel drops the old watch, and
// fsnotify says nothing of it. Called with h.mu held.
func (h *Hub) attachDir(ds *dirSub) error {
	id, ok := dirID(ds.path)
	if !ok {
		h.detachDir(ds)
		return nil
	}
	d := h.dirs[ds.path]
	if d != nil && d.id != id && d.id != (fileID{}) {
		_ = h.w.Remove(ds.path) // the old watch may be gone already
		if err := h.w.Add(ds.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("fswatch: watch %s: %w", ds.path, watchLimit(err))
		}
	}
	if d == nil {
		if err := h.w.Add(ds.path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // gone again: its own subscription hears of it
			}
			return fmt.Errorf("fswatch: watch %s: %w", ds.path, watchLimit(err))
		}
		d = &dir{byName: map[string]map[*sub]struct{}{}, entries: map[*dirSub]struct{}{}}
		h.dirs[ds.path] = d
	}
	d.id = id
	if !ds.attached {
		d.entries[ds] = struct{}{}
		d.n++
		ds.attached = true
	}
	return nil
}

// detachDir stops ds's watch of its directory. Called with h.mu held.
func (h *Hub) detachDir(ds *dirSub) {
	if !ds.attached {
		return
	}
	ds.attached = false
	d := h.dirs[ds.path]
	if d == nil {
		return
	}
	if _, ok := d.entries[ds]; !ok {
		return
	}
	delete(d.entries, ds)
	d.n--
	if d.n == 0 {
		delete(h.dirs, ds.path)
		_ = h.w.Remove(ds.path) // fails harmlessly if the directory is gone
	}
}
