package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
)

// sender is a fake that sends out the value of next on every CheckApply.
type sender struct {
	*fake
	mu   sync.Mutex
	next string
}

func (s *sender) Sends() map[string]any { return map[string]any{"out": "", "count": 0} }

func (s *sender) set(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = v
}

func (s *sender) CheckApply(ctx context.Context, apply bool) (bool, error) {
	s.mu.Lock()
	v := s.next
	s.mu.Unlock()
	if err := s.fake.rt.Load().Send(map[string]any{"out": v}); err != nil {
		return false, err
	}
	return s.fake.CheckApply(ctx, apply)
}

// receiver is a fake with a receivable parameter.
type receiver struct {
	*fake
	Value *string `yaml:"value"`
	Size  int     `yaml:"size"`
	mu    sync.Mutex
	seen  []string // Value during each CheckApply, and whether Recv said it changed
}

func (r *receiver) Validate() error {
	if r.Value != nil && *r.Value == "invalid" {
		return errors.New("value: invalid")
	}
	return nil
}

func (r *receiver) CheckApply(ctx context.Context, apply bool) (bool, error) {
	v := "<nil>"
	if r.Value != nil {
		v = *r.Value
	}
	if r.fake.rt.Load().Recv()["value"] {
		v += " (changed)"
	}
	r.mu.Lock()
	r.seen = append(r.seen, v)
	r.mu.Unlock()
	return r.fake.CheckApply(ctx, apply)
}

func (r *receiver) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func sendGraph(t *testing.T, s *sender, r *receiver) *engine.Graph {
	t.Helper()
	g := graphOfVertices(t, []engine.Vertex{vtx("s", s), vtx("r", r)})
	if err := g.AddEdge(engine.Edge{From: id("s"), To: id("r"),
		Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}}); err != nil {
		t.Fatal(err)
	}
	return g
}

// The receiver sees each new value once; identical resends change nothing.
func TestSendRecvDeliversEachNewValueOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		s := &sender{fake: newFake(rec, "s"), next: "one"}
		r := &receiver{fake: newFake(rec, "r")}
		run := start(t, sendGraph(t, s, r), nil)
		synctest.Wait()
		s.event() // resends "one"
		synctest.Wait()
		s.set("two")
		s.event()
		synctest.Wait()
		r.event() // r's own event: runs with the value it holds, unchanged
		synctest.Wait()
		want := []string{"one (changed)", "two (changed)", "two"}
		if got := r.log(); !slices.Equal(got, want) {
			t.Errorf("receiver saw %q, want %q", got, want)
		}
		// Swapping in the same graph keeps the receiver although its
		// parameter differs from the graph's: send/recv set it.
		r2 := &receiver{fake: newFake(rec, "r")}
		run.graphs <- sendGraph(t, &sender{fake: newFake(rec, "s")}, r2)
		synctest.Wait()
		if r2.inits.Load() != 0 {
			t.Error("a receiver was replaced because of a value it received")
		}
	})
}

// A received value is validated: an invalid one fails the CheckApply.
func TestRecvRevalidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		s := &sender{fake: newFake(rec, "s"), next: "invalid"}
		r := &receiver{fake: newFake(rec, "r")}
		run := start(t, sendGraph(t, s, r), func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		if n := len(r.log()); n != 0 {
			t.Errorf("CheckApply ran %d times with an invalid received value", n)
		}
		if st, _ := run.lastStatus(); !slices.Equal(st.Failed, []engine.ID{id("r")}) {
			t.Errorf("got %+v, want r failed", st)
		}
		s.set("fine")
		s.event()
		synctest.Wait()
		if got := r.log(); !slices.Equal(got, []string{"fine (changed)"}) {
			t.Errorf("receiver saw %q", got)
		}
	})
}

// Send/recv types are checked when the graph is validated, and errors name
// both ends.
func TestSendRecvErrorsAtLoad(t *testing.T) {
	rec := newRecorder()
	for _, tc := range []struct {
		keys engine.KeyMap
		want string
	}{
		{engine.KeyMap{Send: "nope", Recv: "value"}, `fake[s] sends no "nope" (it sends: count, out)`},
		{engine.KeyMap{Send: "out", Recv: "nope"}, `fake[r] has no parameter "nope"`},
		{engine.KeyMap{Send: "count", Recv: "value"}, "fake[s] sends count int but fake[r] parameter value is *string"},
		{engine.KeyMap{Send: "out", Recv: "size"}, "fake[s] sends out string but fake[r] parameter size is int"},
	} {
		s, r := &sender{fake: newFake(rec, "s")}, &receiver{fake: newFake(rec, "r")}
		g := graphOfVertices(t, []engine.Vertex{vtx("s", s), vtx("r", r)})
		if err := g.AddEdge(engine.Edge{From: id("s"), To: id("r"), Keys: []engine.KeyMap{tc.keys}}); err != nil {
			t.Fatal(err)
		}
		err := g.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "fake[s]") ||
			!strings.Contains(err.Error(), "fake[r]") {
			t.Errorf("%+v: got %v, want %q", tc.keys, err, tc.want)
		}
	}
	// One parameter cannot receive from two senders; a non-sender sends nothing.
	s1, s2 := &sender{fake: newFake(rec, "s1")}, &sender{fake: newFake(rec, "s2")}
	r, plain := &receiver{fake: newFake(rec, "r")}, newFake(rec, "plain")
	g := graphOfVertices(t, []engine.Vertex{vtx("s1", s1), vtx("s2", s2), vtx("r", r), vtx("plain", plain)})
	for _, e := range []engine.Edge{
		{From: id("s1"), To: id("r"), Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}},
		{From: id("s2"), To: id("r"), Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}},
		{From: id("plain"), To: id("r"), Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}},
	} {
		if err := g.AddEdge(e); err != nil {
			t.Fatal(err)
		}
	}
	err := g.Validate()
	for _, want := range []string{"already receives from fake[s1]", `fake[plain] sends no "out" (it sends: nothing)`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}

// silentSender is a sender whose CheckApply sends nothing.
type silentSender struct{ *sender }

func (s *silentSender) CheckApply(ctx context.Context, apply bool) (bool, error) {
	return s.fake.CheckApply(ctx, apply)
}

// A receiver replaced because a parameter of its own changed keeps the
// value it received, for a parameter the new graph still receives: its
// replacement has it set before its first CheckApply, even when the new
// sender sends nothing.
func TestReplacedReceiverKeepsTheValueItReceived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		s := &sender{fake: newFake(rec, "s"), next: "one"}
		r := &receiver{fake: newFake(rec, "r")}
		run := start(t, sendGraph(t, s, r), nil)
		synctest.Wait()
		if got := r.log(); !slices.Equal(got, []string{"one (changed)"}) {
			t.Fatalf("receiver saw %q", got)
		}
		s2 := &silentSender{&sender{fake: newFake(rec, "s")}}
		r2 := &receiver{fake: newFake(rec, "r"), Size: 1}
		g := graphOfVertices(t, []engine.Vertex{vtx("s", s2), vtx("r", r2)})
		if err := g.AddEdge(engine.Edge{From: id("s"), To: id("r"),
			Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}}); err != nil {
			t.Fatal(err)
		}
		run.graphs <- g
		synctest.Wait()
		checks(t, map[*fake]int{s2.fake: 1})
		if got := r2.log(); !slices.Equal(got, []string{"one (changed)"}) {
			t.Errorf("replacement receiver saw %q, want the value its predecessor received", got)
		}
	})
}

// A received value that a failed CheckApply did not apply is set again on
// the next run, unless a newer one arrived meanwhile: then the newer one
// is set.
func TestNewerReceivedValueWinsOverOneAFailedRunDidNotApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		s1 := &sender{fake: newFake(rec, "s1"), next: "old"}
		s2 := &sender{fake: newFake(rec, "s2"), next: "new"}
		r := &receiver{fake: newFake(rec, "r")}
		r.gate = make(chan struct{})
		r.result = func(n int) (bool, error) {
			if n == 1 {
				return false, errScripted
			}
			return true, nil
		}
		graph := func(from string) *engine.Graph {
			g := graphOfVertices(t, []engine.Vertex{vtx("s1", s1), vtx("s2", s2), vtx("r", r)})
			if err := g.AddEdge(engine.Edge{From: id(from), To: id("r"),
				Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}}); err != nil {
				t.Fatal(err)
			}
			return g
		}
		run := start(t, graph("s1"), nil)
		synctest.Wait() // r runs with "old" and waits at its gate
		// The edge moves to s2: the swap keeps r (running) and offers it
		// s2's last value, "new", while its run with "old" is in flight.
		run.graphs <- graph("s2")
		synctest.Wait()
		close(r.gate) // the run with "old" fails
		synctest.Wait()
		want := []string{"old (changed)", "new (changed)"}
		if got := r.log(); !slices.Equal(got, want) {
			t.Errorf("receiver saw %q, want %q", got, want)
		}
	})
}
