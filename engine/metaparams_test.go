package engine_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/graftcm/graft/engine"
)

// withMeta wraps fakes as vertices with the given metaparameters.
func withMeta(m engine.Meta, fs ...*fake) []engine.Vertex {
	var vs []engine.Vertex
	for _, f := range fs {
		vs = append(vs, engine.Vertex{ID: id(f.name), Res: f, Meta: m})
	}
	return vs
}

// timedFake records when each CheckApply started.
type timedFake struct {
	*fake
	mu    sync.Mutex
	times []time.Duration
	t0    time.Time
}

func timed(f *fake) *timedFake { return &timedFake{fake: f, t0: time.Now()} }

func (f *timedFake) CheckApply(ctx context.Context, apply bool) (bool, error) {
	f.mu.Lock()
	f.times = append(f.times, time.Since(f.t0))
	f.mu.Unlock()
	return f.fake.CheckApply(ctx, apply)
}

func (f *timedFake) startTimes() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times)
}

// meta retry and delay: a failing CheckApply runs 1+retry times, delay apart,
// then the vertex counts as failed.
func TestRetryCountsAndDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := timed(newFake(rec, "a"))
		a.result = fails
		r := start(t, graphOfVertices(t, []engine.Vertex{{ID: id("a"), Res: a,
			Meta: engine.Meta{Retry: 3, Delay: 2 * time.Second}}}),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		advance(time.Minute)
		want := []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second}
		if got := a.startTimes(); !slices.Equal(got, want) {
			t.Errorf("CheckApply started at %v, want %v", got, want)
		}
		if st, _ := r.lastStatus(); !st.Converged || !slices.Equal(st.Failed, []engine.ID{id("a")}) {
			t.Errorf("got %+v, want converged with a failed", st)
		}
	})
}

// Retries keep descendants waiting and the graph unconverged; a retry that
// succeeds lets them go.
func TestRetrySucceedsThenDescendantsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = func(n int) (bool, error) {
			if n <= 5 {
				return false, errScripted
			}
			return false, nil
		}
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("a"), Res: a, Meta: engine.Meta{Retry: -1, Delay: time.Second}}, vtx("b", b)}, "a->b"),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		advance(3 * time.Second)
		checks(t, map[*fake]int{b: 0})
		if _, ok := r.lastStatus(); ok {
			t.Error("converged while retries were pending")
		}
		advance(time.Minute)
		checks(t, map[*fake]int{a: 6, b: 1})
		if st, _ := r.lastStatus(); !st.Converged || len(st.Failed) != 0 {
			t.Errorf("got %+v, want converged with nothing failed", st)
		}
	})
}

// The CheckApply retry counter belongs to the kind and name: replacing the
// vertex with new parameters does not refill it. RetryReset refills it after
// each success.
func TestRetryCounterKeptAcrossSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		m := engine.Meta{Retry: 2, Delay: time.Second}
		a := newFake(rec, "a")
		a.result = fails
		r := start(t, graphOfVertices(t, withMeta(m, a)), nil)
		synctest.Wait() // first failure; one retry used, waiting
		checks(t, map[*fake]int{a: 1})

		a2 := newFake(rec, "a")
		a2.Param, a2.result = "v2", fails
		r.graphs <- graphOfVertices(t, withMeta(m, a2))
		advance(time.Minute)
		// One retry was left: the new version runs once, retries once, fails.
		checks(t, map[*fake]int{a2: 2})
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.result = func(n int) (bool, error) {
			if n%2 == 1 {
				return false, errScripted
			}
			return true, nil
		}
		start(t, graphOfVertices(t, withMeta(engine.Meta{Retry: 1, RetryReset: true}, a)), nil)
		for range 4 {
			advance(time.Second)
			a.event()
		}
		advance(time.Second)
		// Fail, retry succeeds, refilled: every event fails then succeeds.
		checks(t, map[*fake]int{a: 10})
	})
}

// A failed Watch is restarted while its retry budget lasts; the restart
// counts as an event, since changes may have been missed.
func TestWatchRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := steer(newFake(rec, "a"))
		r := start(t, graphOfVertices(t, []engine.Vertex{{ID: id("a"), Res: a,
			Meta: engine.Meta{Retry: 1, Delay: time.Second}}}),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		checks(t, map[*fake]int{a.fake: 1})
		a.die <- errScripted // first failure: restarted after a second
		advance(2 * time.Second)
		checks(t, map[*fake]int{a.fake: 2})
		a.die <- errScripted // second failure: no retries left
		synctest.Wait()
		if st, _ := r.lastStatus(); !slices.Equal(st.Failed, []engine.ID{id("a")}) {
			t.Errorf("got %+v, want a failed", st)
		}
	})
}

// meta timeout cancels a CheckApply that runs too long.
func TestTimeoutCancelsCheckApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := timed(newFake(rec, "a"))
		a.gate, a.ctxAware = make(chan struct{}), true
		r := start(t, graphOfVertices(t, []engine.Vertex{{ID: id("a"), Res: a,
			Meta: engine.Meta{Timeout: 5 * time.Second}}}),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		advance(4 * time.Second)
		if _, ok := r.lastStatus(); ok {
			t.Fatal("a finished before its timeout")
		}
		advance(2 * time.Second)
		st, ok := r.lastStatus()
		if !ok || !slices.Equal(st.Failed, []engine.ID{id("a")}) {
			t.Fatalf("got %+v, want a failed by its 5s timeout", st)
		}
	})
}

// meta poll checks the vertex every interval and never calls Watch.
func TestPollReplacesWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := timed(newFake(rec, "a"))
		a.hold = make(chan struct{}) // a Watch would never be ready
		start(t, graphOfVertices(t, []engine.Vertex{{ID: id("a"), Res: a,
			Meta: engine.Meta{Poll: 10 * time.Second}}}), nil)
		advance(35 * time.Second)
		want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}
		if got := a.startTimes(); !slices.Equal(got, want) {
			t.Errorf("CheckApply at %v, want %v", got, want)
		}
		if a.watching.Load() {
			t.Error("Watch was started on a polled vertex")
		}
	})
}

// meta limit and burst: at most burst events run at once, then about limit
// per second; events over the limit are delayed, never lost.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		start(t, graphOfVertices(t, []engine.Vertex{{ID: id("a"), Res: a,
			Meta: engine.Meta{Limit: 2, Burst: 3}}}), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1}) // the startup event is not limited
		// A storm of events, each after the previous CheckApply finished.
		for range 10 {
			a.event()
			synctest.Wait()
		}
		checks(t, map[*fake]int{a: 1 + 3})
		// Keep the events coming for ten seconds: about 2 per second more.
		for range 100 {
			advance(100 * time.Millisecond)
			a.event()
		}
		advance(time.Second)
		if n := a.checks.Load(); n < 1+3+19 || n > 1+3+21 {
			t.Errorf("got %d CheckApply calls, want about 24 (1 + burst 3 + 2/s for 10s)", n)
		}
	})
}

// meta sema: never more than count CheckApply calls at once.
func TestSemaphoreCapsConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		gate := make(chan struct{})
		var fs []*fake
		for i := range 10 {
			f := newFake(rec, string(rune('a'+i)))
			f.gate = gate
			fs = append(fs, f)
		}
		start(t, graphOfVertices(t, withMeta(engine.Meta{Sema: []string{"pool:3"}}, fs...)), nil)
		synctest.Wait()
		if rec.maxPar != 3 {
			t.Errorf("%d CheckApply calls at once, want 3", rec.maxPar)
		}
		close(gate)
		synctest.Wait()
		for _, f := range fs {
			checks(t, map[*fake]int{f: 1})
		}
		if rec.maxPar != 3 {
			t.Errorf("%d CheckApply calls at once, want at most 3", rec.maxPar)
		}
	})
}

// Config.Sema caps every CheckApply, like mgmt's --sema.
func TestGlobalSemaphore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		gate := make(chan struct{})
		var fs []*fake
		for i := range 6 {
			f := newFake(rec, string(rune('a'+i)))
			f.gate = gate
			fs = append(fs, f)
		}
		start(t, graphOf(t, fs), func(c *engineConfig) { c.Sema = 2 })
		synctest.Wait()
		close(gate)
		synctest.Wait()
		if rec.maxPar != 2 {
			t.Errorf("%d CheckApply calls at once, want 2", rec.maxPar)
		}
	})
}

// Tags written in opposite orders never deadlock: they are taken sorted.
func TestSemaphoresInOppositeOrderNeverDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		var vs []engine.Vertex
		var fs []*fake
		for i := range 20 {
			f := newFake(rec, string(rune('a'+i)))
			tags := []string{"x", "y:2", "z"}
			if i%2 == 1 {
				slices.Reverse(tags)
			}
			vs = append(vs, engine.Vertex{ID: id(f.name), Res: f, Meta: engine.Meta{Sema: tags}})
			fs = append(fs, f)
		}
		start(t, graphOfVertices(t, vs), nil)
		synctest.Wait() // a deadlock would leave goroutines blocked for ever
		for _, f := range fs {
			checks(t, map[*fake]int{f: 1})
		}
		if rec.maxPar != 1 {
			t.Errorf("%d CheckApply calls at once, want 1 (x and z hold one)", rec.maxPar)
		}
	})
}

// Stopping lands at once inside a retry delay or a rate-limit wait.
func TestStopLandsInsideWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = fails
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("a"), Res: a, Meta: engine.Meta{Retry: -1, Delay: time.Hour}},
			{ID: id("b"), Res: b, Meta: engine.Meta{Limit: rate.Every(time.Hour), Burst: 1}},
		}), nil)
		synctest.Wait()
		b.event()
		b.event() // held for an hour
		synctest.Wait()
		t0 := time.Now()
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("stopping took %v of fake time, want none", d)
		}
	})
}

func TestMetaValidation(t *testing.T) {
	for _, tc := range []struct {
		m    engine.Meta
		want string
	}{
		{engine.Meta{Retry: -2}, "retry"},
		{engine.Meta{Delay: -1}, "delay"},
		{engine.Meta{Limit: 5}, "burst"},
		{engine.Meta{Sema: []string{"3"}}, "bare number"},
		{engine.Meta{Sema: []string{"a:0"}}, "positive"},
		{engine.Meta{Sema: []string{"a:x"}}, "positive"},
		{engine.Meta{Sema: []string{":4"}}, "empty"},
	} {
		if err := tc.m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error about %s", tc.m, err, tc.want)
		}
	}
	for _, ok := range []engine.Meta{{}, {Limit: rate.Inf}, {Limit: 1, Burst: 1}, {Sema: []string{"a", "b:2", "ns:x:3"}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for tag, want := range map[string]struct {
		id    string
		count int64
	}{"a": {"a", 1}, "a:5": {"a", 5}, "a:b:2": {"a:b", 2}} {
		id, count, err := engine.ParseSema(tag)
		if err != nil || id != want.id || count != want.count {
			t.Errorf("ParseSema(%q) = %q, %d, %v", tag, id, count, err)
		}
	}
	// Semaphores sharing an id must agree on the count, cluster ones too;
	// "@@s" is the cluster's, another semaphore than the host's "s".
	rec := newRecorder()
	g := graphOfVertices(t, []engine.Vertex{
		{ID: id("a"), Res: newFake(rec, "a"), Meta: engine.Meta{Sema: []string{"s:2"}}},
		{ID: id("b"), Res: newFake(rec, "b"), Meta: engine.Meta{Sema: []string{"s:3"}}},
		{ID: id("c"), Res: newFake(rec, "c"), Meta: engine.Meta{Sema: []string{"@@s:5"}}},
		{ID: id("d"), Res: newFake(rec, "d"), Meta: engine.Meta{Sema: []string{"@@t"}}},
		{ID: id("e"), Res: newFake(rec, "e"), Meta: engine.Meta{Sema: []string{"@@t:2"}}},
	})
	err := g.Validate()
	if err == nil || !strings.Contains(err.Error(), `holds semaphore "s" with count 2`) ||
		!strings.Contains(err.Error(), `fake[e]: meta: sema "@@t:2": fake[d] holds semaphore "@@t" with count 1`) ||
		strings.Contains(err.Error(), "@@s") {
		t.Errorf("got %v", err)
	}
}

// Equal compares every field: a field added to Meta and forgotten in Equal
// would make graph swaps keep vertices whose metaparameters changed.
func TestMetaEqualCoversEveryField(t *testing.T) {
	v := reflect.ValueOf(&engine.Meta{}).Elem()
	for i := range v.NumField() {
		var m engine.Meta
		f := reflect.ValueOf(&m).Elem().Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(7)
		case reflect.Float64:
			f.SetFloat(7)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("field %s: unhandled kind %v", v.Type().Field(i).Name, f.Kind())
		}
		if m.Equal(engine.Meta{}) {
			t.Errorf("Equal ignores field %s", v.Type().Field(i).Name)
		}
	}
}

// The CheckApply retry budget belongs to a kind and name while it is in the
// graph: a vertex removed and later added back starts with the whole
// budget again.
func TestRetryBudgetRefilledWhenVertexLeavesAndReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		m := engine.Meta{Retry: 1, Delay: time.Second}
		a, other := newFake(rec, "a"), newFake(rec, "other")
		a.result = fails
		r := start(t, graphOfVertices(t, append(withMeta(m, a), vtx("other", other))), nil)
		advance(time.Minute)
		checks(t, map[*fake]int{a: 2}) // ran, retried once, failed

		r.graphs <- graphOfVertices(t, []engine.Vertex{vtx("other", other)})
		synctest.Wait()
		a2 := newFake(rec, "a")
		a2.result = fails
		r.graphs <- graphOfVertices(t, append(withMeta(m, a2), vtx("other", other)))
		advance(time.Minute)
		checks(t, map[*fake]int{a2: 2})
	})
}
