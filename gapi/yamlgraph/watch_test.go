package yamlgraph_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/internal/fswatch"
	"github.com/graftcm/graft/resources"
)

// logRec is one captured log record with its attributes as text.
type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder is a slog.Handler that keeps every record and signals each one.
type recorder struct {
	mu   sync.Mutex
	recs []logRec
	grew chan struct{}
}

func newRecorder() *recorder { return &recorder{grew: make(chan struct{}, 1)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logRec{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, l)
	r.mu.Unlock()
	select {
	case r.grew <- struct{}{}:
	default:
	}
	return nil
}

// count returns how many records match.
func (r *recorder) count(match func(logRec) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.recs {
		if match(l) {
			n++
		}
	}
	return n
}

// waitCount waits until at least n records match.
func (r *recorder) waitCount(t *testing.T, what string, n int, match func(logRec) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for r.count(match) < n {
		select {
		case <-r.grew:
		case <-deadline.C:
			t.Fatalf("no %s logged within 10s", what)
		}
	}
}

func msgIs(msg string) func(logRec) bool {
	return func(l logRec) bool { return l.msg == msg }
}

const (
	msgSwapping  = "graph file changed; swapping in the new graph"
	msgUnchanged = "graph file unchanged"
	msgRejected  = "graph file edit rejected; keeping the running graph"
)

// graphSrc is a graph named name with one noop resource per entry of res.
// Tests tell graphs apart by name only: noops may be autogrouped.
func graphSrc(name string, res ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph: %s\nresources:\n  noop:\n", name)
	for _, r := range res {
		fmt.Fprintf(&b, "  - name: %s\n", r)
	}
	return b.String()
}

// watchFixture is a Watcher running on a real fswatch hub over a temp dir.
type watchFixture struct {
	path string
	log  *recorder
	out  chan *engine.Graph
	stop context.CancelFunc
	done chan error // Run's result

	once   sync.Once
	runErr error
}

// wait waits for Run to return and returns its result.
func (f *watchFixture) wait(t *testing.T) error {
	t.Helper()
	f.once.Do(func() {
		select {
		case f.runErr = <-f.done:
		case <-time.After(10 * time.Second):
			f.runErr = errors.New("Run did not return within 10s of cancel")
		}
	})
	return f.runErr
}

// startWatch writes src to a graph file and runs a Watcher on it until the
// test ends.
func startWatch(t *testing.T, src string, debounce time.Duration) *watchFixture {
	t.Helper()
	f := &watchFixture{path: filepath.Join(t.TempDir(), "g.yaml"), log: newRecorder(),
		out: make(chan *engine.Graph), done: make(chan error, 1)}
	writeFile(t, f.path, src)

	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(hubCtx) }()
	t.Cleanup(func() {
		stopHub()
		if err := <-hubDone; err != nil {
			t.Errorf("hub: %v", err)
		}
	})

	w, err := yamlgraph.Open(yamlgraph.WatchConfig{
		Path: f.path, Registry: resources.NewRegistry(resources.Deps{}), Files: hub,
		Debounce: debounce, Logger: slog.New(f.log),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() { f.done <- w.Run(ctx, f.out) }()
	t.Cleanup(func() {
		cancel()
		if err := f.wait(t); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

func writeFile(t *testing.T, p, src string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// next waits for the next graph.
func (f *watchFixture) next(t *testing.T) *engine.Graph {
	t.Helper()
	select {
	case g := <-f.out:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no graph within 10s")
		return nil
	}
}

// none checks that no graph is waiting to be taken.
func (f *watchFixture) none(t *testing.T, after string) {
	t.Helper()
	select {
	case g := <-f.out:
		t.Fatalf("after %s: got graph %q, want none", after, g.Name)
	default:
	}
}

// The graph Open loaded comes first; an edit in place delivers the new one.
func TestWatchValidEditDeliversNewGraph(t *testing.T) {
	f := startWatch(t, graphSrc("v1", "a"), 0)
	if g := f.next(t); g.Name != "v1" {
		t.Fatalf("first graph: %q, want v1", g.Name)
	}
	writeFile(t, f.path, graphSrc("v2", "a", "b"))
	if g := f.next(t); g.Name != "v2" {
		t.Fatalf("after edit: %q, want v2", g.Name)
	}
}

// An edit that does not parse is logged, every problem at Error level with
// its file and line, and delivers nothing; the next good edit goes through.
func TestWatchInvalidEditLogsAndDeliversNothing(t *testing.T) {
	f := startWatch(t, graphSrc("v1", "a"), 0)
	f.next(t)
	bad := "graph: bad\nresources:\n  noop:\n  - name: a\n    colour: red\n  - name: b\n    size: 3\n"
	writeFile(t, f.path, bad)
	f.log.waitCount(t, "rejected edit", 2, msgIs(msgRejected))
	f.none(t, "an invalid edit")

	var lines []string
	f.log.count(func(l logRec) bool {
		if l.msg == msgRejected {
			if l.level != slog.LevelError || l.attrs["file"] != f.path {
				t.Errorf("rejection logged at %v for file %q, want ERROR for %q", l.level, l.attrs["file"], f.path)
			}
			lines = append(lines, l.attrs["line"])
			if !strings.Contains(l.attrs["err"], f.path+":"+l.attrs["line"]+":") {
				t.Errorf("error %q does not name %s:%s", l.attrs["err"], f.path, l.attrs["line"])
			}
		}
		return false
	})
	if strings.Join(lines, ",") != "5,7" {
		t.Errorf("rejections at lines %v, want 5 and 7", lines)
	}
	if n := f.log.count(msgIs(msgSwapping)); n != 0 {
		t.Errorf("%d graphs swapped in after an invalid edit", n)
	}

	writeFile(t, f.path, graphSrc("v2", "a", "b"))
	if g := f.next(t); g.Name != "v2" {
		t.Fatalf("after a good edit: got %q, want v2", g.Name)
	}
}

// Rewriting the file with the bytes it already has delivers nothing.
func TestWatchIdenticalRewriteDeliversNothing(t *testing.T) {
	src := graphSrc("v1", "a")
	f := startWatch(t, src, 0)
	f.next(t)
	// Run re-reads the file once at start; wait for that so the count below
	// is about the rewrite only.
	f.log.waitCount(t, "the first re-read", 1, msgIs(msgUnchanged))
	writeFile(t, f.path, src)
	f.log.waitCount(t, "the rewrite", 2, msgIs(msgUnchanged))
	f.none(t, "an identical rewrite")
	if n := f.log.count(msgIs(msgSwapping)); n != 0 {
		t.Errorf("%d graphs swapped in after an identical rewrite", n)
	}
}

// Editors save by writing a new file and renaming it over the old one; the
// watch follows the name, again and again.
func TestWatchRenameOver(t *testing.T) {
	f := startWatch(t, graphSrc("v1", "a"), 0)
	f.next(t)
	for i := 2; i <= 4; i++ {
		tmp := filepath.Join(filepath.Dir(f.path), ".g.yaml.swp")
		writeFile(t, tmp, graphSrc(fmt.Sprintf("v%d", i), "a", "b"))
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
		if g := f.next(t); g.Name != fmt.Sprintf("v%d", i) {
			t.Fatalf("after rename %d: got %q", i, g.Name)
		}
	}
}

// While nobody takes graphs, a newer one replaces the one waiting: the
// receiver gets only the latest.
func TestWatchKeepsOnlyTheLatest(t *testing.T) {
	f := startWatch(t, graphSrc("v1", "a"), 0)
	f.next(t)
	writeFile(t, f.path, graphSrc("v2", "a", "b"))
	f.log.waitCount(t, "the first edit", 1, msgIs(msgSwapping))
	writeFile(t, f.path, graphSrc("v3", "a", "b", "c"))
	f.log.waitCount(t, "the second edit", 2, msgIs(msgSwapping))
	if g := f.next(t); g.Name != "v3" {
		t.Fatalf("got %q, want only the latest graph v3", g.Name)
	}
	f.none(t, "taking the latest graph")
}

// A file written in two steps within the quiet period is read once, whole:
// the half-written (invalid) state is never parsed.
func TestWatchDebouncesPartialWrites(t *testing.T) {
	f := startWatch(t, graphSrc("v1", "a"), time.Second)
	f.next(t)
	full := graphSrc("v2", "a", "b")
	half := full[:len(full)-8] // ends inside "- name: b": a resource without a name
	if _, err := yamlgraph.Parse(f.path, []byte(half), resources.NewRegistry(resources.Deps{})); err == nil {
		t.Fatal("the half-written graph parses; the test needs one that does not")
	}
	writeFile(t, f.path, half)
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(full[len(half):]); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	if g := f.next(t); g.Name != "v2" {
		t.Fatalf("got %q, want v2", g.Name)
	}
	if n := f.log.count(msgIs(msgRejected)); n != 0 {
		t.Errorf("the half-written file was parsed: %d rejections logged", n)
	}
}

// Cancelling the context stops Run, which returns nil and leaves no
// goroutine behind.
func TestWatchStopsOnCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("watch", func(t *testing.T) {
		f := startWatch(t, graphSrc("v1", "a"), 0)
		f.next(t)
		f.stop()
		if err := f.wait(t); err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	})
}

// Open returns the first load's errors, naming file and line.
func TestWatchOpenErrors(t *testing.T) {
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	dir := t.TempDir()
	reg := resources.NewRegistry(resources.Deps{})
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "resources:\n  noop:\n  - name: a\n    colour: red\n")
	if _, err := yamlgraph.Open(yamlgraph.WatchConfig{Path: bad, Registry: reg, Files: hub}); err == nil ||
		!strings.Contains(err.Error(), bad+":4:5:") {
		t.Errorf("invalid file: got %v, want an error at %s:4:5", err, bad)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := yamlgraph.Open(yamlgraph.WatchConfig{Path: missing, Registry: reg, Files: hub}); err == nil ||
		!errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: got %v, want an error naming %s", err, missing)
	}
	if _, err := yamlgraph.Open(yamlgraph.WatchConfig{Path: bad, Files: hub}); err == nil {
		t.Error("no Registry: got no error")
	}
}
