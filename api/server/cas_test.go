package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/graftcm/graft/api"
)

// Of N clients that create the same key with cas=0 at once, exactly one
// writes it; every other one is told the key exists, with the winner's
// value and revision.
func TestCASCreateIfAbsentHasExactlyOneWinner(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	const n = 8
	answers := make([]api.CASAnswer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i], errs[i] = f.client.PutCAS(t.Context(), "lock", []byte(strconv.Itoa(i)), 0)
		})
	}
	wg.Wait()
	winner := -1
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if a.Applied {
			if winner >= 0 {
				t.Fatalf("clients %d and %d both created the key", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no client created the key")
	}
	won := answers[winner]
	kv, ok, err := f.world.Get(t.Context(), "lock")
	if err != nil || !ok || string(kv.Value) != strconv.Itoa(winner) || kv.ModRev != won.Rev {
		t.Fatalf("the key is %q at %d (found %t, %v), want %d at %d", kv.Value, kv.ModRev, ok, err, winner, won.Rev)
	}
	for i, a := range answers {
		if i == winner {
			continue
		}
		if a.KV == nil || string(a.KV.Value) != strconv.Itoa(winner) || a.KV.ModRev != won.Rev || a.Rev < won.Rev {
			t.Errorf("loser %d was told %+v, want the winner's value %d at %d", i, a, winner, won.Rev)
		}
	}
}

// A put whose cas names a revision the key is no longer at writes nothing
// and answers 412 with the key as it is, which a retry succeeds with.
func TestCASStaleRevisionLosesAndReportsTheCurrentKV(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	r1, err := f.client.Put(ctx, "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.client.Put(ctx, "k", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.client.PutCAS(ctx, "k", []byte("v3"), r1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Applied || a.KV == nil || string(a.KV.Value) != "v2" || a.KV.ModRev != r2 || a.KV.Version != 2 || a.Rev < r2 {
		t.Fatalf("put at the stale revision %d: %+v, want not applied and v2 at %d", r1, a, r2)
	}
	if !strings.Contains(a.Error, fmt.Sprintf("at revision %d, not %d", r2, r1)) {
		t.Errorf("the answer's error %q does not name the key's revision", a.Error)
	}
	if kv, _, _ := f.world.Get(ctx, "k"); string(kv.Value) != "v2" {
		t.Errorf("a failed compare wrote: the key holds %q", kv.Value)
	}
	// The raw answer: 412, the KV object under "kv".
	code, _, body := rawRequest(t, f, "PUT", fmt.Sprintf("/v1/kv/k?cas=%d", r1), strings.NewReader("v3"))
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil || code != http.StatusPreconditionFailed ||
		raw["applied"] != false || raw["kv"] == nil || raw["error"] == nil {
		t.Errorf("raw answer to a stale cas: %d %s", code, body)
	}
	// Retrying with the revision the answer gave succeeds.
	a, err = f.client.PutCAS(ctx, "k", []byte("v3"), a.KV.ModRev)
	if err != nil || !a.Applied || a.Rev <= r2 {
		t.Fatalf("put at the current revision: %+v %v", a, err)
	}
	if kv, _, _ := f.world.Get(ctx, "k"); string(kv.Value) != "v3" || kv.ModRev != a.Rev {
		t.Errorf("the key is %q at %d, want v3 at %d", kv.Value, kv.ModRev, a.Rev)
	}
	// A key that does not exist is at no revision but 0.
	a, err = f.client.PutCAS(ctx, "missing", []byte("x"), r2)
	if err != nil || a.Applied || a.KV != nil || !strings.Contains(a.Error, "does not exist") {
		t.Errorf("put of a missing key at revision %d: %+v %v", r2, a, err)
	}
	if _, ok, _ := f.world.Get(ctx, "missing"); ok {
		t.Error("a failed compare created the key")
	}
}

// A delete with cas deletes only a key at that revision; cas=0 applies to
// a missing key only, and changes nothing.
func TestCASDeleteOnlyAtTheRevision(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	r1, _ := f.client.Put(ctx, "k", []byte("v1"))
	r2, err := f.client.Put(ctx, "k", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []uint64{r1, 0} {
		a, err := f.client.DeleteCAS(ctx, "k", rev)
		if err != nil || a.Applied || a.KV == nil || a.KV.ModRev != r2 {
			t.Errorf("delete at revision %d of a key at %d: %+v %v", rev, r2, a, err)
		}
	}
	if _, ok, _ := f.world.Get(ctx, "k"); !ok {
		t.Fatal("a failed compare deleted the key")
	}
	a, err := f.client.DeleteCAS(ctx, "k", r2)
	if err != nil || !a.Applied || a.Rev <= r2 {
		t.Fatalf("delete at the current revision: %+v %v", a, err)
	}
	if _, ok, _ := f.world.Get(ctx, "k"); ok {
		t.Fatal("the key is still there")
	}
	a, err = f.client.DeleteCAS(ctx, "k", r2)
	if err != nil || a.Applied || a.KV != nil {
		t.Errorf("delete of a deleted key at its old revision: %+v %v", a, err)
	}
	before := f.world.Rev()
	a, err = f.client.DeleteCAS(ctx, "k", 0)
	if err != nil || !a.Applied || a.Rev != before {
		t.Errorf("delete of a missing key at revision 0: %+v %v, want applied at %d (no change)", a, err, before)
	}
}

// A cas that is not one revision is refused with 400 naming it, and
// nothing is written: not even unconditionally.
func TestCASBadRevisionIsRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, q := range []struct{ query, msg string }{
		{"cas=abc", `cas="abc": want a revision`},
		{"cas=-1", `cas="-1"`},
		{"cas=%2B1", `cas="+1"`},
		{"cas=+1", `cas=" 1"`},
		{"cas=", `cas=""`},
		{"cas=1.0", `cas="1.0"`},
		{"cas=18446744073709551616", "want a revision, a whole number from 0 to 18446744073709551615"},
		{"cas=1&cas=1", "cas given 2 times"},
		{"cas=%zz", "query"},
		{"cass=1", `unknown query parameter "cass"`},
		{"cas=0;x", "query"},
	} {
		for _, method := range []string{"PUT", "DELETE"} {
			if method == "DELETE" {
				if _, err := f.client.Put(t.Context(), "k", []byte("kept")); err != nil {
					t.Fatal(err)
				}
			}
			code, _, body := rawRequest(t, f, method, "/v1/kv/k?"+q.query, strings.NewReader("written"))
			var eb api.ErrorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil || code != 400 || !strings.Contains(eb.Error, q.msg) {
				t.Errorf("%s ?%s: %d %s, want 400 and %q", method, q.query, code, body, q.msg)
			}
			kv, ok, _ := f.world.Get(t.Context(), "k")
			if method == "PUT" && ok {
				t.Errorf("PUT ?%s wrote %q", q.query, kv.Value)
			}
			if method == "DELETE" && !ok {
				t.Errorf("DELETE ?%s deleted the key", q.query)
			}
			if method == "DELETE" {
				if _, err := f.client.Delete(t.Context(), "k"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// Clients that increment a counter by compare-and-swap, retrying with the
// revision a failed compare reports, lose no increment: the compare and
// the write are one step.
func TestCASIncrementsLoseNoUpdate(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	if a, err := f.client.PutCAS(ctx, "count", []byte("0"), 0); err != nil || !a.Applied {
		t.Fatalf("creating the counter: %+v %v", a, err)
	}
	const clients, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			kv, _, err := f.client.Get(ctx, "count")
			for done := 0; err == nil && done < each; {
				var n int
				if n, err = strconv.Atoi(string(kv.Value)); err != nil {
					break
				}
				var a api.CASAnswer
				a, err = f.client.PutCAS(ctx, "count", []byte(strconv.Itoa(n+1)), kv.ModRev)
				switch {
				case err != nil:
				case a.Applied:
					done++
					kv, _, err = f.client.Get(ctx, "count")
				case a.KV == nil:
					err = fmt.Errorf("the counter vanished: %+v", a)
				default:
					kv = *a.KV // retry with what the failure reported, no read
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	kv, _, err := f.world.Get(ctx, "count")
	if err != nil || string(kv.Value) != strconv.Itoa(clients*each) {
		t.Fatalf("the counter is %q (%v), want %d", kv.Value, err, clients*each)
	}
}
