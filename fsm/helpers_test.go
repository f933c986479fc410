package fsm

import (
	"bytes"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness applies commands to an FSM at growing indexes.
type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
}

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	return &harness{t: t, f: New(opts)}
}

// apply applies cmds as one entry at the next index.
func (h *harness) apply(cmds ...Command) []Result {
	h.t.Helper()
	data, err := EncodeBatch(cmds)
	if err != nil {
		h.t.Fatalf("EncodeBatch: %v", err)
	}
	h.index++
	res, err := h.f.Apply(h.index, data)
	if err != nil {
		h.t.Fatalf("Apply(%d): %v", h.index, err)
	}
	if len(res) != len(cmds) {
		h.t.Fatalf("Apply(%d): %d results, want %d", h.index, len(res), len(cmds))
	}
	return res
}

// ok applies one command that must succeed.
func (h *harness) ok(c Command) Result {
	h.t.Helper()
	res := h.apply(c)[0]
	if res.Err != "" {
		h.t.Fatalf("command %+v: %s", c, res.Err)
	}
	return res
}

// fails applies one command that must fail and change nothing.
func (h *harness) fails(c Command) Result {
	h.t.Helper()
	before := h.snapshot()
	rev := h.f.Rev()
	res := h.apply(c)[0]
	if res.Err == "" {
		h.t.Fatalf("command %+v succeeded, want an error", c)
	}
	if res.Rev != rev || h.f.Rev() != rev {
		h.t.Fatalf("failed command moved revision: result %d, Rev %d, want %d", res.Rev, h.f.Rev(), rev)
	}
	// The snapshot holds the applied index, so compare the states alone.
	if after := h.snapshot(); !bytes.Equal(stateOf(h.t, before), stateOf(h.t, after)) {
		h.t.Fatalf("failed command %+v changed the state", c)
	}
	return res
}

// snapshot persists the FSM's state.
func (h *harness) snapshot() []byte {
	h.t.Helper()
	return persist(h.t, h.f)
}

func persist(t testing.TB, f *FSM) []byte {
	t.Helper()
	s := f.Snapshot()
	defer s.Release()
	var buf bytes.Buffer
	if err := s.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

// stateOf strips the applied index from a persisted snapshot by
// re-persisting it with index zero.
func stateOf(t testing.TB, snap []byte) []byte {
	t.Helper()
	st, err := readSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatalf("readSnapshot: %v", err)
	}
	s := &Snapshot{rev: st.rev, token: st.token, tree: st.tree}
	var buf bytes.Buffer
	if err := s.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

// events returns every event after rev.
func (h *harness) events(after uint64, prefix string) []Event {
	h.t.Helper()
	evs, _, err := h.f.Events(after, prefix, 0)
	if err != nil {
		h.t.Fatalf("Events(%d, %q): %v", after, prefix, err)
	}
	return evs
}

// value returns key's value, or "<absent>".
func (h *harness) value(key string) string {
	kv, ok := h.f.Get(key)
	if !ok {
		return "<absent>"
	}
	return string(kv.Value)
}

func put(key, value string) Command {
	return Command{Op: OpPut, Key: key, Value: []byte(value)}
}

func eput(node, key, value string) Command {
	return Command{Op: OpPut, Key: key, Value: []byte(value), Ephemeral: true, Node: node}
}

func del(key string) Command { return Command{Op: OpDelete, Key: key} }

func delPrefix(prefix string) Command { return Command{Op: OpDeletePrefix, Key: prefix} }

func acquire(sema string, count int64, node, holder string) Command {
	return Command{Op: OpSemaAcquire, Sema: sema, Count: count, Node: node, Holder: holder}
}

func release(sema, node, holder string) Command {
	return Command{Op: OpSemaRelease, Sema: sema, Node: node, Holder: holder}
}

func exportSet(node string, xs ...Export) Command {
	return Command{Op: OpExportSet, Node: node, Exports: xs}
}

// describe renders events compactly: "put a=1@3", "del a@4".
func describe(evs []Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		switch e.Type {
		case EventPut:
			out = append(out, "put "+e.KV.Key+"="+string(e.KV.Value)+"@"+itoa(e.KV.ModRev))
		case EventDelete:
			out = append(out, "del "+e.KV.Key+"@"+itoa(e.KV.ModRev))
		}
	}
	return out
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
