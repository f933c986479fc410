package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is the shared log of what fake resources did, in order.
type recorder struct {
	mu      sync.Mutex
	events  []string
	running map[string]bool
	maxPar  int
}

func newRecorder() *recorder { return &recorder{running: map[string]bool{}} }

func (r *recorder) add(ev string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) begin(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "start "+name)
	r.running[name] = true
	r.maxPar = max(r.maxPar, len(r.running))
}

func (r *recorder) end(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "end "+name)
	delete(r.running, name)
}

// log returns a copy of the events so far.
func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// index returns the position of the first event equal to ev, or -1.
func (r *recorder) index(ev string) int { return slices.Index(r.log(), ev) }

func (r *recorder) isRunning(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[name]
}

// fake is a scripted resource. Its exported field is its only parameter, so
// graph swaps compare it.
type fake struct {
	Param string

	name string
	rec  *recorder

	// gate, if set, makes each CheckApply wait for a value (or close) before
	// returning; the CheckApply stays "running" until then.
	gate chan struct{}
	// result decides the outcome of the n-th CheckApply (1-based); nil
	// means "already in state".
	result func(n int) (bool, error)
	// hold, if set, makes Watch wait for it to close before Running.
	hold chan struct{}
	// watchErr, if set, is returned by Watch at start, before Running: a
	// Watch whose watches could not be set up. (A Watch that fails after
	// Running is failWatch's: by then CheckApply may have run.)
	watchErr error
	// ctxAware makes a gated CheckApply return ctx.Err() when ctx ends.
	ctxAware bool
	// failWatch, if set, makes Watch return what it receives on it.
	failWatch chan error

	rt        atomic.Pointer[engine.Runtime]
	inits     atomic.Int32
	cleanups  atomic.Int32
	checks    atomic.Int32
	watching  atomic.Bool
	applies   []bool // the apply argument of each CheckApply
	refreshes []bool // Refresh() seen by each CheckApply
	mu        sync.Mutex
}

func newFake(rec *recorder, name string) *fake { return &fake{name: name, rec: rec} }

func (f *fake) Validate() error { return nil }

func (f *fake) Init(rt *engine.Runtime) error {
	f.inits.Add(1)
	f.rt.Store(rt)
	f.rec.add("init " + f.name)
	return nil
}

func (f *fake) Cleanup() error {
	f.cleanups.Add(1)
	f.rec.add("cleanup " + f.name)
	return nil
}

func (f *fake) Watch(ctx context.Context) error {
	f.watching.Store(true)
	defer f.watching.Store(false)
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return nil
		}
	}
	if f.watchErr != nil {
		return f.watchErr
	}
	f.rt.Load().Running()
	select {
	case <-ctx.Done():
	case err := <-f.failWatch:
		return err
	}
	return nil
}

func (f *fake) CheckApply(ctx context.Context, apply bool) (bool, error) {
	n := int(f.checks.Add(1))
	f.mu.Lock()
	f.applies = append(f.applies, apply)
	f.refreshes = append(f.refreshes, f.rt.Load().Refresh())
	f.mu.Unlock()
	f.rec.begin(f.name)
	defer f.rec.end(f.name)
	if f.gate != nil {
		if f.ctxAware {
			select {
			case <-f.gate:
			case <-ctx.Done():
				return false, ctx.Err()
			}
		} else {
			<-f.gate
		}
	}
	if f.result == nil {
		return true, nil
	}
	return f.result(n)
}

// event injects a Watch event.
func (f *fake) event() { f.rt.Load().Event() }

func (f *fake) refreshLog() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.refreshes)
}

// changes makes every CheckApply report that it changed something.
func changes(int) (bool, error) { return false, nil }

// fails makes every CheckApply fail.
func fails(int) (bool, error) { return false, errScripted }

// graphOf builds a graph from fakes and "a->b" or "a=>b" (notify) edges.
func graphOf(t testing.TB, fakes []*fake, edges ...string) *engine.Graph {
	t.Helper()
	g := engine.NewGraph("test")
	for _, f := range fakes {
		if err := g.AddVertex(engine.Vertex{ID: id(f.name), Res: f}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range edges {
		notify := strings.Contains(e, "=>")
		from, to, ok := strings.Cut(strings.ReplaceAll(e, "=>", "->"), "->")
		if !ok {
			t.Fatalf("bad edge %q", e)
		}
		if err := g.AddEdge(engine.Edge{From: id(from), To: id(to), Notify: notify}); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func id(name string) engine.ID { return engine.ID{Kind: "fake", Name: name} }

// run is an engine running in the test's bubble.
type run struct {
	t       *testing.T
	eng     *engine.Engine
	graphs  chan *engine.Graph
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	history []engine.Status
}

// start runs an engine on g. cfg may be nil for defaults.
func start(t *testing.T, g *engine.Graph, mod func(*engine.Config)) *run {
	t.Helper()
	r := &run{t: t, graphs: make(chan *engine.Graph, 1), done: make(chan error, 1)}
	cfg := engine.DefaultConfig()
	cfg.Hostname = "test"
	cfg.OnConverged = func(s engine.Status) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.history = append(r.history, s)
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.eng = eng
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- eng.Run(ctx, r.graphs) }()
	if g != nil {
		r.graphs <- g
	}
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// stop cancels the engine and returns Run's error. It waits, so every
// gated CheckApply must be released first.
func (r *run) stop() error {
	r.cancel()
	err := <-r.done
	r.done <- err // let Cleanup's receive return too
	return err
}

func (r *run) statuses() []engine.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history)
}

// lastStatus returns the latest converged status, or false if none.
func (r *run) lastStatus() (engine.Status, bool) {
	h := r.statuses()
	if len(h) == 0 {
		return engine.Status{}, false
	}
	return h[len(h)-1], true
}

// advance lets fake time pass inside the bubble: every goroutine of the
// bubble runs until it blocks, and timers due in d fire.
func advance(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

// checks asserts how many CheckApply calls each fake has seen.
func checks(t *testing.T, want map[*fake]int) {
	t.Helper()
	for f, n := range want {
		if got := int(f.checks.Load()); got != n {
			t.Errorf("%s: got %d CheckApply calls, want %d", f.name, got, n)
		}
	}
}

func before(t *testing.T, rec *recorder, a, b string) {
	t.Helper()
	ia, ib := rec.index(a), rec.index(b)
	if ia < 0 || ib < 0 || ia > ib {
		t.Errorf("want %q before %q; log: %s", a, b, fmt.Sprint(rec.log()))
	}
}

type engineConfig = engine.Config

const hour = time.Hour

var errScripted = errors.New("scripted failure")

// engineVertex wraps a fake as a vertex with the given noop metaparam.
func engineVertex(f *fake, noop bool) engine.Vertex {
	return engine.Vertex{ID: id(f.name), Res: f, Meta: engine.Meta{Noop: noop}}
}

func lastIndex(log []string, ev string) int {
	for i := len(log) - 1; i >= 0; i-- {
		if log[i] == ev {
			return i
		}
	}
	return -1
}

// logCapture is a slog.Handler that keeps every record, for tests that
// assert what the engine logs.
type logCapture struct {
	mu   *sync.Mutex
	recs *[]logRec
	pre  []slog.Attr // from WithAttrs
}

// logRec is one captured record: level, message and attributes as text.
type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogCapture() logCapture { return logCapture{mu: &sync.Mutex{}, recs: &[]logRec{}} }

func (c logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range c.pre {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.recs = append(*c.recs, rec)
	return nil
}

func (c logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	c.pre = append(slices.Clip(c.pre), as...)
	return c
}

func (c logCapture) WithGroup(string) slog.Handler { return c }

// records returns the captured records whose message contains msg.
func (c logCapture) records(msg string) []logRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []logRec
	for _, r := range *c.recs {
		if strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}
