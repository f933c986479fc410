package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/graftcm/graft/internal/atomicfile"
)

// stateFile is the name of the engine's state file in Config.StateDir.
const stateFile = "engine-state.json"

// maxStateFile bounds the state file read at start.
const maxStateFile = 64 << 20

// stateStore keeps, on disk, what must survive a crash of the agent: the
// refreshes notify edges delivered that no CheckApply has consumed yet, and
// the vertices with notify edges whose CheckApply was in flight (it may
// have changed something, so on restart their children get a refresh: at
// least once, never lost). It is owned by the scheduler goroutine; a nil
// store persists nothing.
//
// Writes replace the file atomically (write, then rename), so a crash leaves
// the old state or the new one. The file is not fsynced: it survives the
// process being killed, which is what it is for, though a power cut may
// lose the last changes.
//
// A record that must not be lost (a new refresh, a CheckApply starting) is
// written before the engine goes on; a record that only goes away is
// written within a second, batched. A vertex run again and again thus
// writes nothing once its in-flight record is on disk, and a crash before a
// removal is written delivers a refresh once more: at least once.
type stateStore struct {
	path     string
	log      *slog.Logger
	refresh  map[ID]bool
	inflight map[ID]bool
	loaded   bool // entries loaded from disk not yet matched to a graph
	dirty    bool // memory differs from disk

	diskRefresh  map[ID]bool // what the file holds
	diskInflight map[ID]bool
	lazy         *time.Timer // armed while only removals wait to be written
}

// lazyDelay is how long removals may wait to be written.
const lazyDelay = time.Second

// stateJSON is the file format.
type stateJSON struct {
	Version  int  `json:"version"`
	Refresh  []ID `json:"refresh,omitempty"`
	Inflight []ID `json:"inflight,omitempty"`
}

// openState loads the state in dir, or returns nil if dir is empty. A file
// that cannot be parsed is moved aside and the engine starts afresh.
func openState(dir string, log *slog.Logger) (*stateStore, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("engine state: %w", err)
	}
	st := &stateStore{path: filepath.Join(dir, stateFile), log: log,
		refresh: map[ID]bool{}, inflight: map[ID]bool{},
		diskRefresh: map[ID]bool{}, diskInflight: map[ID]bool{}}
	data, err := atomicfile.Read(st.path, maxStateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("engine state: %w", err)
	}
	var doc stateJSON
	if err := json.Unmarshal(data, &doc); err != nil || doc.Version != 1 {
		aside := st.path + ".corrupt"
		log.Error("engine state unreadable; moving it aside and starting afresh",
			"path", st.path, "moved_to", aside, "err", err, "version", doc.Version)
		return st, os.Rename(st.path, aside)
	}
	for _, id := range doc.Refresh {
		st.refresh[id] = true
	}
	for _, id := range doc.Inflight {
		st.inflight[id] = true
	}
	st.diskRefresh, st.diskInflight = maps.Clone(st.refresh), maps.Clone(st.inflight)
	st.loaded = len(st.refresh)+len(st.inflight) > 0
	if st.loaded {
		log.Info("pending refreshes restored", "refresh", len(doc.Refresh), "inflight", len(doc.Inflight))
	}
	return st, nil
}

// setRefresh records or clears a pending refresh for each of ids.
func (st *stateStore) setRefresh(ids []ID, on bool) {
	if st != nil {
		st.set(st.refresh, ids, on)
	}
}

// setInflight records or clears a CheckApply in flight for each of ids.
func (st *stateStore) setInflight(ids []ID, on bool) {
	if st != nil {
		st.set(st.inflight, ids, on)
	}
}

func (st *stateStore) set(m map[ID]bool, ids []ID, on bool) {
	for _, id := range ids {
		if m[id] == on {
			continue
		}
		if on {
			m[id] = true
		} else {
			delete(m, id)
		}
		st.dirty = true
	}
}

// takeRefresh reports whether any of ids has a pending refresh on record.
// The record stays until a CheckApply consumes it.
func (st *stateStore) takeRefresh(ids []ID) bool {
	if st == nil {
		return false
	}
	for _, id := range ids {
		if st.refresh[id] {
			return true
		}
	}
	return false
}

// takeInflight reports, and clears, whether any of ids was in flight when
// the agent died.
func (st *stateStore) takeInflight(ids []ID) bool {
	if st == nil {
		return false
	}
	found := false
	for _, id := range ids {
		if st.inflight[id] {
			found = true
			delete(st.inflight, id)
			st.dirty = true
		}
	}
	return found
}

// forget drops what is on record for vertices that left the graph.
func (st *stateStore) forget(ids []ID) {
	st.setRefresh(ids, false)
	st.setInflight(ids, false)
}

// prune drops records of vertices the first graph after a restart does not
// have: they are gone.
func (st *stateStore) prune(has func(ID) bool) {
	if st == nil || !st.loaded {
		return
	}
	st.loaded = false
	for id := range st.refresh {
		if !has(id) {
			st.setRefresh([]ID{id}, false)
		}
	}
	for id := range st.inflight {
		if !has(id) {
			st.setInflight([]ID{id}, false)
		}
	}
}

// flush writes the state now if it holds a record the file lacks, and
// arms the lazy timer if it only lost some. Errors are logged: losing
// persistence must not stop the engine.
func (st *stateStore) flush() {
	if st == nil || !st.dirty {
		return
	}
	if st.urgent() {
		st.flushNow()
		return
	}
	if st.lazy == nil {
		st.lazy = time.NewTimer(lazyDelay)
	}
}

// urgent reports whether memory holds a record the file lacks.
func (st *stateStore) urgent() bool {
	for id := range st.refresh {
		if !st.diskRefresh[id] {
			return true
		}
	}
	for id := range st.inflight {
		if !st.diskInflight[id] {
			return true
		}
	}
	return false
}

// due returns the lazy timer's channel, which the scheduler selects on and
// answers with flushNow.
func (st *stateStore) due() <-chan time.Time {
	if st == nil || st.lazy == nil {
		return nil
	}
	return st.lazy.C
}

// flushNow writes the state if it differs from the file.
func (st *stateStore) flushNow() {
	if st == nil || !st.dirty {
		return
	}
	if st.lazy != nil {
		st.lazy.Stop()
		st.lazy = nil
	}
	st.dirty = false
	doc := stateJSON{Version: 1}
	for id := range st.refresh {
		doc.Refresh = append(doc.Refresh, id)
	}
	for id := range st.inflight {
		doc.Inflight = append(doc.Inflight, id)
	}
	sortIDs(doc.Refresh)
	sortIDs(doc.Inflight)
	data, err := json.Marshal(doc)
	if err == nil {
		err = atomicfile.Write(st.path, data, 0o600, false)
	}
	if err != nil {
		st.log.Error("cannot persist pending refreshes", "path", st.path, "err", err)
		st.dirty = true
		return
	}
	st.diskRefresh, st.diskInflight = maps.Clone(st.refresh), maps.Clone(st.inflight)
}
