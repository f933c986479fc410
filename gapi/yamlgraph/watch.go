package yamlgraph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
)

// DefaultDebounce is how long a graph file must stay quiet after a change
// before Watcher reads it, so that a file still being written is not parsed.
const DefaultDebounce = 100 * time.Millisecond

// maxDebounceRounds bounds how long a file that never stops changing can
// postpone a read: at most this many debounce periods after the first change.
const maxDebounceRounds = 10

// FileWatcher tells its caller when a path may have changed. notify is called
// from the watcher's own goroutine and must not block; spurious calls are
// allowed, missed changes are not. *fswatch.Hub implements it.
type FileWatcher interface {
	Watch(path string, notify func()) (cancel func(), err error)
}

// WatchConfig configures a Watcher.
type WatchConfig struct {
	// Path is the graph file. Errors and logs name it as given; relative
	// paths are resolved against the working directory when Open is called.
	Path string
	// Registry resolves resource kinds. Required.
	Registry *engine.Registry
	// Files reports changes to the graph file. Required.
	Files FileWatcher
	// Debounce is the quiet period after a change before the file is read
	// again. Zero means DefaultDebounce.
	Debounce time.Duration
	// Hostname is what {{ .Hostname }} expands to in a templated graph
	// (template: true); empty means this machine's host name.
	Hostname string
	// Logger receives reloads, parse errors (at Error level, one record per
	// problem) and warnings. Nil discards them.
	Logger *slog.Logger
}

// Watcher keeps the graph in a YAML file current: it loads the file once
// (Open), then, in Run, re-reads it whenever it changes and hands every new
// valid graph on. An edit that does not parse is logged and ignored, so the
// graph running stays the last good one.
type Watcher struct {
	cfg     WatchConfig
	abs     string
	log     *slog.Logger
	initial *Result
	data    []byte // contents of the initial graph
}

// Open checks cfg and loads the graph file, returning the file's errors if
// it does not parse. Warnings are logged.
func Open(cfg WatchConfig) (*Watcher, error) {
	switch {
	case cfg.Path == "":
		return nil, errors.New("yamlgraph watch: Path is empty")
	case cfg.Registry == nil:
		return nil, errors.New("yamlgraph watch: Registry is nil")
	case cfg.Files == nil:
		return nil, errors.New("yamlgraph watch: Files is nil")
	case cfg.Debounce < 0:
		return nil, fmt.Errorf("yamlgraph watch: Debounce is %v, want 0 (default) or a positive duration", cfg.Debounce)
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("yamlgraph watch: %w", err)
	}
	w := &Watcher{cfg: cfg, abs: abs, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	data, err := readFile(w.abs, w.cfg.Path)
	if err != nil {
		return nil, err
	}
	res, err := ParseWith(cfg.Path, data, cfg.Registry, Options{Hostname: cfg.Hostname})
	if err != nil {
		return nil, err
	}
	w.logWarnings(res.Warnings)
	w.initial, w.data = res, data
	return w, nil
}

// Graph returns the graph Open loaded. Run and Source hand that graph on
// (to the engine): read it before starting them, not after.
func (w *Watcher) Graph() *engine.Graph { return w.initial.Graph }

// Run sends the graph Open loaded on out, then a new graph each time the
// file changes to new valid contents, until ctx is done; it then returns
// nil. It returns an error only if it cannot watch the file. Call it once.
//
// Run keeps only the newest graph not yet taken: while the receiver is busy,
// a newer graph replaces the one waiting. For that to hold all the way,
// out should be unbuffered; graphs already in a buffer stay there.
// Rewriting the file with the bytes already sent sends nothing.
func (w *Watcher) Run(ctx context.Context, out chan<- *engine.Graph) error {
	return run(ctx, w, out, func(_ []byte, res *Result) *engine.Graph { return res.Graph })
}

// Source returns the watcher as a graph source: it sends a *gapi.Declared
// where Run sends a graph, under the same rules. Each Declared's first
// Build returns the graph parsed when the file was read; later Builds
// parse the contents it was made from again, so that every graph they
// return has resources of its own. Call its Run once, instead of the
// watcher's.
func (w *Watcher) Source() gapi.Source { return watcherSource{w} }

type watcherSource struct{ w *Watcher }

func (s watcherSource) Run(ctx context.Context, out chan<- *gapi.Declared) error {
	return run(ctx, s.w, out, func(data []byte, res *Result) *gapi.Declared {
		return declared(s.w.cfg.Path, data, s.w.cfg.Registry, Options{Hostname: s.w.cfg.Hostname}, res)
	})
}

// run is Run, sending what item makes of each new graph file's contents
// and parse.
func run[T any](ctx context.Context, w *Watcher, out chan<- T, item func([]byte, *Result) T) error {
	kick := make(chan struct{}, 1)
	cancel, err := w.cfg.Files.Watch(w.abs, func() {
		select {
		case kick <- struct{}{}:
		default: // a read is already due; it will see this change too
		}
	})
	if err != nil {
		return fmt.Errorf("yamlgraph watch: %s: %w", w.cfg.Path, err)
	}
	defer cancel()
	// The file may have changed between Open and the subscription.
	kick <- struct{}{}

	quiet := time.NewTimer(0)
	quiet.Stop()
	defer quiet.Stop()
	var (
		waiting bool      // a change was seen and the read is due
		first   time.Time // when the first unread change was seen
		pending = item(w.data, w.initial)
		has     = true   // pending is to be sent
		sent    = w.data // contents of the newest graph sent or pending
		seen    = w.data // contents last read, valid or not
	)
	for {
		var send chan<- T
		if has {
			send = out
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- pending:
			var zero T
			pending, has = zero, false
		case <-kick:
			now := time.Now()
			if !waiting {
				waiting, first = true, now
			}
			// Wait for quiet, but not forever for a file that keeps changing.
			quiet.Reset(min(w.cfg.Debounce, first.Add(maxDebounceRounds*w.cfg.Debounce).Sub(now)))
		case <-quiet.C:
			waiting = false
			data, err := readFile(w.abs, w.cfg.Path)
			if err != nil {
				w.log.Error("cannot read the graph file; keeping the running graph", "file", w.cfg.Path, "err", err)
				seen = nil
				continue
			}
			if bytes.Equal(data, seen) {
				w.log.Debug("graph file unchanged", "file", w.cfg.Path)
				continue
			}
			seen = data
			if bytes.Equal(data, sent) {
				w.log.Info("graph file is back to the running graph", "file", w.cfg.Path)
				continue
			}
			res, err := ParseWith(w.cfg.Path, data, w.cfg.Registry, Options{Hostname: w.cfg.Hostname})
			if err != nil {
				w.logErrors(err)
				continue
			}
			w.logWarnings(res.Warnings)
			w.log.Info("graph file changed; swapping in the new graph", "file", w.cfg.Path,
				"graph", res.Graph.Name, "resources", res.Graph.Len(), "edges", len(res.Graph.Edges()))
			pending, has, sent = item(data, res), true, data
		}
	}
}

// logErrors logs each problem of a rejected edit at Error level.
func (w *Watcher) logErrors(err error) {
	logErrors(w.log, w.cfg.Path, err)
}

// logErrors logs each problem of a rejected edit of file at Error level.
func logErrors(log *slog.Logger, file string, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		attrs := []any{"file", file, "err", e}
		var pe *Error
		if errors.As(e, &pe) {
			attrs = append(attrs, "line", pe.Line, "column", pe.Column)
		}
		log.Error("graph file edit rejected; keeping the running graph", attrs...)
	}
}

func (w *Watcher) logWarnings(warns []Warning) {
	for _, x := range warns {
		w.log.Warn(x.Msg, "file", x.File, "line", x.Line, "column", x.Column)
	}
}
