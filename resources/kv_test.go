package resources

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

// The World and its Handle offer the compare-and-set skiplessthan uses.
var (
	_ kvSwapper = (*world.World)(nil)
	_ kvSwapper = (*world.Handle)(nil)
)

// kvWorlds starts a cluster of n nodes (inside a synctest bubble) and
// returns a World per node, named after it.
func kvWorlds(t *testing.T, n int) []*world.World {
	t.Helper()
	_, ws := worldtest.New(t, n)
	return ws
}

// newKV validates k and initialises it with a runtime on w.
func newKV(t *testing.T, w *world.World, k *KV) *testRuntime {
	t.Helper()
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	rt := newTestRuntime("kv", k.name)
	rt.Hostname, rt.World = w.Host(), w
	if err := k.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	return rt
}

// kvValue reads key on w, after w has every write made so far.
func kvValue(t *testing.T, w *world.World, key string) (string, bool) {
	t.Helper()
	if err := w.Linearize(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, ok, err := w.KVGet(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

// waitKV waits until key holds want on w.
func waitKV(t *testing.T, w *world.World, key, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v, ok := kvValue(t, w, key)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q (exists %t), want %q", key, v, ok, want)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// kvEngine runs an engine on host w's World with g until the test ends.
func kvEngine(t *testing.T, w engine.World, host string, g *engine.Graph) chan<- *engine.Graph {
	t.Helper()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := engine.DefaultConfig()
	cfg.Hostname, cfg.World = host, w
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	graphs := make(chan *engine.Graph, 1)
	graphs <- g
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, graphs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return graphs
}

func kvGraph(t *testing.T, kvs ...*KV) *engine.Graph {
	t.Helper()
	g := engine.NewGraph("kv")
	for _, k := range kvs {
		addVertex(t, g, "kv", k.name, k, engine.Meta{})
	}
	return g
}

// A kv writes its value, then finds it in state without writing again
// (no new revision); deleting (value absent) removes the key once.
func TestKVWritesSkipsWhenEqualAndDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := kvWorlds(t, 1)
		w := ws[0]
		k := &KV{name: "app/port", Value: strptr("8080")}
		newKV(t, w, k)
		converge(t, k, true, false)
		if v, ok := kvValue(t, w, "app/port"); !ok || v != "8080" {
			t.Fatalf("after apply: %q %t", v, ok)
		}
		rev := w.Rev()
		converge(t, k, true, true)
		if w.Rev() != rev {
			t.Errorf("a kv in state wrote: revision %d, then %d", rev, w.Rev())
		}

		// An empty value is a value, not a delete.
		e := &KV{name: "e", Key: "app/port", Value: strptr("")}
		newKV(t, w, e)
		converge(t, e, true, false)
		if v, ok := kvValue(t, w, "app/port"); !ok || v != "" {
			t.Fatalf("after an empty value: %q %t", v, ok)
		}

		d := &KV{name: "d", Key: "app/port"}
		newKV(t, w, d)
		converge(t, d, true, false)
		if _, ok := kvValue(t, w, "app/port"); ok {
			t.Fatal("a kv without a value left its key")
		}
		rev = w.Rev()
		converge(t, d, true, true)
		if w.Rev() != rev {
			t.Error("deleting a missing key wrote")
		}
	})
}

// With apply false (noop) a kv reports what it would change and changes
// nothing: neither a set nor a delete.
func TestKVNoopWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := kvWorlds(t, 1)[0]
		set := &KV{name: "k", Value: strptr("v")}
		newKV(t, w, set)
		rev := w.Rev()
		converge(t, set, false, false)
		if _, ok := kvValue(t, w, "k"); ok || w.Rev() != rev {
			t.Fatal("apply=false set the key")
		}
		if err := w.KVPut(t.Context(), "k", []byte("there")); err != nil {
			t.Fatal(err)
		}
		del := &KV{name: "k"}
		newKV(t, w, del)
		rev = w.Rev()
		converge(t, del, false, false)
		if v, ok := kvValue(t, w, "k"); !ok || v != "there" || w.Rev() != rev {
			t.Fatalf("apply=false changed the key: %q %t", v, ok)
		}
	})
}

// skiplessthan leaves a greater stored value alone and raises a smaller
// one; integers compare as numbers (9 < 10), strings byte by byte ("9" >
// "10"); a stored value that is not a number is replaced; a refresh sets
// the exact value even when it is smaller.
func TestKVSkipLessThan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := kvWorlds(t, 1)[0]
		ctx := t.Context()
		put := func(v string) {
			t.Helper()
			if err := w.KVPut(ctx, "stage", []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		ints := &KV{name: "stage", Value: strptr("9"), SkipLessThan: true}
		rt := newKV(t, w, ints)
		put("10")
		converge(t, ints, true, true)
		if v, _ := kvValue(t, w, "stage"); v != "10" {
			t.Fatalf("int style lowered 10 to %q", v)
		}
		put("8")
		converge(t, ints, true, false)
		if v, _ := kvValue(t, w, "stage"); v != "9" {
			t.Fatalf("int style left 8 at %q, want 9", v)
		}
		put("junk")
		converge(t, ints, true, false)
		if v, _ := kvValue(t, w, "stage"); v != "9" {
			t.Fatalf("int style left a non-number at %q, want 9", v)
		}
		put("10")
		rt.refresh.Store(true)
		converge(t, ints, true, false)
		rt.refresh.Store(false)
		if v, _ := kvValue(t, w, "stage"); v != "9" {
			t.Fatalf("a refresh left %q, want the exact value 9", v)
		}

		strs := &KV{name: "s", Key: "stage", Value: strptr("9"), SkipLessThan: true, SkipCmpStyle: kvCmpString}
		newKV(t, w, strs)
		put("10") // "10" < "9" as strings
		converge(t, strs, true, false)
		if v, _ := kvValue(t, w, "stage"); v != "9" {
			t.Fatalf("string style left %q, want 9 (\"10\" sorts before \"9\")", v)
		}
		put("a")
		converge(t, strs, true, true)
		if v, _ := kvValue(t, w, "stage"); v != "a" {
			t.Fatalf("string style lowered \"a\" to %q", v)
		}
	})
}

// A mapped kv keeps this host's own entry: three hosts' engines each keep
// theirs, and every host reads all three.
func TestKVMappedEachHostItsOwnEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := kvWorlds(t, 3)
		for _, w := range ws {
			k := &KV{name: "peers", Key: "svc/peers", Value: strptr("addr-of-" + w.Host()), Mapped: true}
			kvEngine(t, w, w.Host(), kvGraph(t, k))
		}
		deadline := time.Now().Add(time.Minute)
		for _, w := range ws {
			for {
				if err := w.Linearize(t.Context()); err != nil {
					t.Fatal(err)
				}
				vals, err := w.KVHostGet(t.Context(), "svc/peers")
				if err != nil {
					t.Fatal(err)
				}
				if len(vals) == 3 && string(vals["node0"]) == "addr-of-node0" &&
					string(vals["node1"]) == "addr-of-node1" && string(vals["node2"]) == "addr-of-node2" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s reads %q, want each host's own entry", w.Host(), vals)
				}
				<-time.After(10 * time.Millisecond)
			}
		}
		if _, ok := kvValue(t, ws[0], "svc/peers"); ok {
			t.Error("a mapped kv wrote the global key")
		}
	})
}

// Watch follows the key: when another host overwrites it (or deletes it),
// the engine puts the declared value back.
func TestKVRepairsDriftMadeByAnotherHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := kvWorlds(t, 3)
		k := &KV{name: "k", Key: "app/mode", Value: strptr("ours")}
		kvEngine(t, ws[0], ws[0].Host(), kvGraph(t, k))
		waitKV(t, ws[0], "app/mode", "ours")
		for range 2 {
			if err := ws[1].KVPut(t.Context(), "app/mode", []byte("theirs")); err != nil {
				t.Fatal(err)
			}
			waitKV(t, ws[2], "app/mode", "ours")
		}
		if err := ws[2].KVDelete(t.Context(), "app/mode"); err != nil {
			t.Fatal(err)
		}
		waitKV(t, ws[1], "app/mode", "ours")
	})
}

// Init without a World fails with ErrNoWorld, naming the resource's key.
func TestKVWithoutWorldFailsInit(t *testing.T) {
	k := &KV{name: "x", Value: strptr("v")}
	rt := newTestRuntime("kv", "x")
	err := k.Init(&rt.Runtime)
	if !errors.Is(err, engine.ErrNoWorld) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("Init without a World: %v", err)
	}
}

// Validate names the parameter at fault.
func TestKVValidate(t *testing.T) {
	for _, tc := range []struct {
		k    *KV
		want string
	}{
		{&KV{}, "key: empty"},
		{&KV{name: fsm.InternalPrefix + "sema/x"}, "key: "},
		{&KV{name: "k", SkipCmpStyle: 2}, "skipcmpstyle: 2"},
		{&KV{name: "k", Value: strptr("v1"), SkipLessThan: true}, `value: "v1" is not an integer`},
	} {
		if err := tc.k.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error starting %q", tc.k, err, tc.want)
		}
	}
	for _, ok := range []*KV{
		{name: "k"},
		{name: "k", Value: strptr("v1"), SkipLessThan: true, SkipCmpStyle: kvCmpString},
		{name: "k", Value: strptr("-3"), SkipLessThan: true},
		{name: "k", SkipLessThan: true}, // a delete compares nothing
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// Two kv resources keeping one key at values of their own conflict;
// skiplessthan stages of one key do not, nor a global and a mapped key of
// the same name.
func TestKVClaims(t *testing.T) {
	conflict := func(kvs ...*KV) bool {
		g := engine.NewGraph("g")
		for _, k := range kvs {
			if err := g.AddVertex(engine.Vertex{ID: engine.ID{Kind: "kv", Name: k.name}, Res: k}); err != nil {
				t.Fatal(err)
			}
		}
		return errors.Is(g.Validate(), engine.ErrConflict)
	}
	if !conflict(&KV{name: "a", Key: "k", Value: strptr("1")}, &KV{name: "b", Key: "k", Value: strptr("2")}) {
		t.Error("two kv resources setting one key were accepted")
	}
	if !conflict(&KV{name: "a", Key: "k", Value: strptr("1")}, &KV{name: "b", Key: "k"}) {
		t.Error("a kv setting a key and one deleting it were accepted")
	}
	if conflict(&KV{name: "a", Key: "k", Value: strptr("1"), SkipLessThan: true},
		&KV{name: "b", Key: "k", Value: strptr("2"), SkipLessThan: true}) {
		t.Error("skiplessthan stages of one key were refused")
	}
	if conflict(&KV{name: "a", Key: "k", Value: strptr("1")}, &KV{name: "b", Key: "k", Value: strptr("2"), Mapped: true}) {
		t.Error("a global and a mapped key of one name were refused")
	}
}

// racingWorld is a host's World on which another host writes the key right
// after each read, as long as raises lasts: between the reader's read and
// its write.
type racingWorld struct {
	*world.World
	other  *world.World
	raises []string
}

func (r *racingWorld) KVGet(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := r.World.KVGet(ctx, key)
	if len(r.raises) > 0 {
		if err := r.other.KVPut(ctx, key, []byte(r.raises[0])); err != nil {
			return nil, false, err
		}
		r.raises = r.raises[1:]
	}
	return v, ok, err
}

// A skiplessthan stage never lowers a value another host raised between
// its read and its write: it reads again and leaves the greater value. One
// that keeps losing that race gives up with an error rather than write.
func TestKVSkipLessThanNeverLowersARaceWinner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := kvWorlds(t, 2)
		if err := ws[0].KVPut(t.Context(), "stage", []byte("2")); err != nil {
			t.Fatal(err)
		}
		k := &KV{name: "stage", Value: strptr("3"), SkipLessThan: true}
		rt := newKV(t, ws[0], k)
		rw := &racingWorld{World: ws[0], other: ws[1], raises: []string{"5"}}
		rt.World = rw
		converge(t, k, true, true)
		if v, _ := kvValue(t, ws[1], "stage"); v != "5" {
			t.Fatalf("stage holds %q after a race with a raise to 5, want 5", v)
		}

		rw.raises = []string{"10", "11", "12", "13", "14", "15", "16", "17", "18", "19"}
		k.Value = strptr("100")
		if _, err := k.CheckApply(t.Context(), true); err == nil || !strings.Contains(err.Error(), "changed it") {
			t.Errorf("a kv that lost every race: %v, want an error saying the key kept changing", err)
		}
		if v, _ := kvValue(t, ws[1], "stage"); v != "19" {
			t.Errorf("stage holds %q, want the last raise, 19", v)
		}
		converge(t, k, true, false) // the race over, it raises the key
		if v, _ := kvValue(t, ws[1], "stage"); v != "100" {
			t.Errorf("stage holds %q, want 100", v)
		}
	})
}
