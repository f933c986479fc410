// Package fswatch tells subscribers when a path may have changed, sharing one
// inotify instance among all of them.
//
// A subscription watches one path, which need not exist. The hub watches the
// path's parent directory, or, while that is missing, the nearest ancestor
// that exists, and moves the watch down or up as directories come and go. A
// subscriber hears about the path being created, removed, renamed, written or
// having its mode or owner changed, and about any directory on the way to it
// appearing or vanishing. Events carry no detail: a subscriber re-checks the
// path. Spurious notifications are allowed, missed ones are not.
//
// One shared instance matters: Linux allows each user 128 inotify instances by
// default, so one watcher per resource does not scale past a few hundred files.
package fswatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// Hub multiplexes path subscriptions onto one fsnotify watcher. Create it with
// New, run its dispatch loop with Run, and subscribe with Watch.
type Hub struct {
	log *slog.Logger
	w   *fsnotify.Watcher

	mu     sync.Mutex
	closed bool
	dirs   map[string]*dir // watched directory -> subscriptions anchored there
	subs   map[*sub]struct{}
	dsubs  map[*dirSub]struct{} // WatchDir subscriptions
}

// dir is a watched directory and the subscriptions anchored in it, keyed by
// the name of the entry each one waits on.
type dir struct {
	byName  map[string]map[*sub]struct{}
	entries map[*dirSub]struct{} // told of every entry of the directory
	id      fileID               // the directory watched, once entries is used
	n       int
}

type sub struct {
	target string // cleaned absolute path
	anchor string // watched directory, "" if none
	name   string // entry of anchor on the way to target
	notify func()
}

// New returns a hub with its own inotify instance. Logger may be nil. When a
// limit of the kernel stops it, or stops a watch, the error is a
// *LimitError that says which limit and how to raise it.
func New(log *slog.Logger) (*Hub, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("fswatch: %w", initLimit(err))
	}
	return &Hub{log: log, w: w, dirs: map[string]*dir{}, subs: map[*sub]struct{}{}, dsubs: map[*dirSub]struct{}{}}, nil
}

// Run dispatches events until ctx is done, then closes the hub. Subscribers
// hear nothing once Run has returned.
func (h *Hub) Run(ctx context.Context) error {
	defer h.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-h.w.Events:
			if !ok {
				return errors.New("fswatch: watcher closed")
			}
			h.handle(ev)
		case err, ok := <-h.w.Errors:
			if !ok {
				return errors.New("fswatch: watcher closed")
			}
			// Usually an overflow: events were lost, so everyone re-checks.
			h.log.Warn("file watch error; rechecking every watched path", "err", err)
			h.rescanAll()
		}
	}
}

// Close releases the inotify instance. It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	return h.w.Close()
}

// Watch subscribes notify to changes of path, which must be absolute. notify
// is called from the hub's goroutine and must not block. Call the returned
// function to unsubscribe.
func (h *Hub) Watch(path string, notify func()) (cancel func(), err error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("fswatch: %q is not an absolute path", path)
	}
	s := &sub{target: filepath.Clean(path), notify: notify}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("fswatch: hub is closed")
	}
	if _, err := h.place(s); err != nil {
		return nil, err
	}
	h.subs[s] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs, s)
			h.detach(s)
		})
	}, nil
}

// handle routes one event to the subscriptions it may concern.
func (h *Hub) handle(ev fsnotify.Event) {
	var wake []*sub
	var entries []dirWake
	h.mu.Lock()
	parent, name := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	if d := h.dirs[parent]; d != nil {
		for s := range d.byName[name] {
			wake = append(wake, s)
		}
		for ds := range d.entries {
			entries = append(entries, dirWake{ds, name})
		}
	}
	// The watched directory itself went away or moved.
	if d := h.dirs[ev.Name]; d != nil && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		_ = h.w.Remove(ev.Name) // may already be gone
		delete(h.dirs, ev.Name)
		for _, set := range d.byName {
			for s := range set {
				s.anchor = ""
				wake = append(wake, s)
			}
		}
		for ds := range d.entries {
			ds.attached = false
			h.placeDir(ds)
			entries = append(entries, dirWake{ds, ""})
		}
	}
	structural := ev.Has(fsnotify.Create | fsnotify.Remove | fsnotify.Rename)
	for _, s := range wake {
		if structural || s.anchor == "" {
			if _, err := h.place(s); err != nil {
				h.log.Warn("cannot watch path", "path", s.target, "err", err)
			}
		}
	}
	h.mu.Unlock()
	for _, s := range wake {
		s.notify()
	}
	for _, e := range entries {
		e.ds.notify(e.name)
	}
}

// rescanAll re-places and notifies every subscription.
func (h *Hub) rescanAll() {
	h.mu.Lock()
	all := make([]*sub, 0, len(h.subs))
	for s := range h.subs {
		all = append(all, s)
		if _, err := h.place(s); err != nil {
			h.log.Warn("cannot watch path", "path", s.target, "err", err)
		}
	}
	dirs := make([]*dirSub, 0, len(h.dsubs))
	for ds := range h.dsubs {
		dirs = append(dirs, ds)
		h.placeDir(ds)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.notify()
	}
	for _, ds := range dirs {
		ds.notify("")
	}
}

// place anchors s at the deepest existing directory on the way to its target
// (at most the target's parent) and reports whether the anchor moved. Called
// with h.mu held.
func (h *Hub) place(s *sub) (moved bool, err error) {
	for range 64 { // bounded: each round follows a directory that appeared or vanished
		anchor, name := nearest(s.target)
		if anchor == s.anchor && name == s.name {
			return moved, nil
		}
		h.detach(s)
		if err := h.attach(s, anchor, name); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // it vanished between the stat and the watch: look again
			}
			return moved, fmt.Errorf("fswatch: watch %s: %w", anchor, watchLimit(err))
		}
		moved = true
		// A directory created between the stat and the watch sent no event
		// to us: if the anchor changed meanwhile, loop and move again.
	}
	return moved, fmt.Errorf("fswatch: %s keeps changing", s.target)
}

// nearest returns the deepest existing directory that is the target's parent
// or an ancestor of it, and the next path element below it.
func nearest(target string) (anchor, name string) {
	child := target
	for {
		parent := filepath.Dir(child)
		if parent == child { // the root
			return parent, ""
		}
		if fi, err := os.Stat(parent); err == nil && fi.IsDir() {
			return parent, filepath.Base(child)
		}
		child = parent
	}
}

func (h *Hub) attach(s *sub, anchor, name string) error {
	d := h.dirs[anchor]
	if d == nil {
		if err := h.w.Add(anchor); err != nil {
			return err
		}
		d = &dir{byName: map[string]map[*sub]struct{}{}, entries: map[*dirSub]struct{}{}}
		h.dirs[anchor] = d
	}
	set := d.byName[name]
	if set == nil {
		set = map[*sub]struct{}{}
		d.byName[name] = set
	}
	set[s] = struct{}{}
	d.n++
	s.anchor, s.name = anchor, name
	return nil
}

func (h *Hub) detach(s *sub) {
	if s.anchor == "" {
		return
	}
	if d := h.dirs[s.anchor]; d != nil {
		if set := d.byName[s.name]; set != nil {
			if _, ok := set[s]; ok {
				delete(set, s)
				d.n--
				if len(set) == 0 {
					delete(d.byName, s.name)
				}
			}
		}
		if d.n == 0 {
			delete(h.dirs, s.anchor)
			_ = h.w.Remove(s.anchor) // fails harmlessly if the directory is gone
		}
	}
	s.anchor, s.name = "", ""
}
