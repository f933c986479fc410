package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/graftcm/graft/internal/atomicfile"
)

// statusFile keeps a file holding the agent's converged state, "true\n" or
// "false\n", for scripts to read (--converged-status-file). Every write
// replaces the file atomically, so a reader sees one state or the other,
// never a partial file.
//
// set is called from the engine's scheduler goroutine and must not block, so
// writes happen on run's goroutine; a state that changes again before it is
// written is skipped, the file only ever catching up with the latest.
type statusFile struct {
	path string
	log  *slog.Logger
	kick chan struct{} // capacity 1: a write is due

	mu        sync.Mutex
	converged bool // latest state reported
	written   bool // converged is what the file holds
}

// newStatusFile writes "false" to path and returns the status file. An error
// means the file cannot be written at all.
func newStatusFile(path string, log *slog.Logger) (*statusFile, error) {
	f := &statusFile{path: path, log: log, kick: make(chan struct{}, 1), written: true}
	if err := f.write(false); err != nil {
		return nil, err
	}
	return f, nil
}

// set records the converged state for run to write. It never blocks and does
// nothing on a nil statusFile.
func (f *statusFile) set(converged bool) {
	if f == nil {
		return
	}
	f.mu.Lock()
	if f.converged != converged {
		f.converged, f.written = converged, false
	}
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// run writes each new state until ctx is done, then writes the last one if
// it is not on disk yet. Write errors are logged; the agent goes on.
func (f *statusFile) run(ctx context.Context) error {
	for {
		select {
		case <-f.kick:
			f.flush()
		case <-ctx.Done():
			f.flush()
			return nil
		}
	}
}

func (f *statusFile) flush() {
	f.mu.Lock()
	converged, written := f.converged, f.written
	f.mu.Unlock()
	if written {
		return
	}
	if err := f.write(converged); err != nil {
		f.log.Error("cannot write the converged status file", "path", f.path, "converged", converged, "err", err)
		return
	}
	f.mu.Lock()
	if f.converged == converged {
		f.written = true
	}
	f.mu.Unlock()
}

// write replaces the file with the state: a temporary file in the same
// directory, renamed over it.
func (f *statusFile) write(converged bool) error {
	if err := atomicfile.Write(f.path, fmt.Appendf(nil, "%t\n", converged), 0o644, false); err != nil {
		return fmt.Errorf("converged status file: %w", err)
	}
	return nil
}
