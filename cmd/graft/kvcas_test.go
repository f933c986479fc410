package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// kv put --cas and kv del --cas write only at the revision given; a failed
// compare exits exitCompareFailed, naming the key's revision, and writes
// nothing.
func TestKVPutAndDelWithCASExitOnAFailedCompare(t *testing.T) {
	sock, w := testAPI(t)
	ctx := t.Context()
	if code, _, stderr := graft(t, "kv", "put", "--api", sock, "--cas", "0", "k", "v1"); code != 0 {
		t.Fatalf("put --cas 0 of a new key: exit %d: %s", code, stderr)
	}
	kv, ok, err := w.Get(ctx, "k")
	if err != nil || !ok || string(kv.Value) != "v1" {
		t.Fatalf("the key holds %q (found %t, %v), want v1", kv.Value, ok, err)
	}
	r1 := kv.ModRev

	code, stdout, stderr := graft(t, "kv", "put", "--api", sock, "--cas", "0", "k", "v2")
	want := fmt.Sprintf("exists, at revision %d", r1)
	if code != exitCompareFailed || stdout != "" || !strings.Contains(stderr, want) || !strings.Contains(stderr, "nothing written") {
		t.Errorf("put --cas 0 of an existing key: exit %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, exitCompareFailed, want)
	}
	stale := strconv.FormatUint(r1-1, 10)
	code, _, stderr = graft(t, "kv", "put", "--api", sock, "--cas", stale, "k", "v2")
	if want := fmt.Sprintf("at revision %d, not %s", r1, stale); code != exitCompareFailed || !strings.Contains(stderr, want) {
		t.Errorf("put --cas %s: exit %d, stderr %q; want %d and %q", stale, code, stderr, exitCompareFailed, want)
	}
	if kv, _, _ := w.Get(ctx, "k"); string(kv.Value) != "v1" {
		t.Fatalf("a failed compare wrote %q", kv.Value)
	}
	cur := strconv.FormatUint(r1, 10)
	if code, _, stderr := graft(t, "kv", "put", "--api", sock, "--cas", cur, "k", "v2"); code != 0 {
		t.Fatalf("put --cas %s at the key's revision: exit %d: %s", cur, code, stderr)
	}
	kv, _, _ = w.Get(ctx, "k")
	if string(kv.Value) != "v2" || kv.ModRev <= r1 {
		t.Fatalf("the key is %q at %d, want v2 after %d", kv.Value, kv.ModRev, r1)
	}

	code, _, stderr = graft(t, "kv", "del", "--api", sock, "--cas", cur, "k")
	if want := fmt.Sprintf("at revision %d, not %d", kv.ModRev, r1); code != exitCompareFailed || !strings.Contains(stderr, want) ||
		!strings.Contains(stderr, "nothing deleted") {
		t.Errorf("del --cas %d: exit %d, stderr %q; want %d and %q", r1, code, stderr, exitCompareFailed, want)
	}
	if _, ok, _ := w.Get(ctx, "k"); !ok {
		t.Fatal("a failed compare deleted the key")
	}
	if code, _, stderr := graft(t, "kv", "del", "--api", sock, "--cas", strconv.FormatUint(kv.ModRev, 10), "k"); code != 0 {
		t.Fatalf("del at the key's revision: exit %d: %s", code, stderr)
	}
	if _, ok, _ := w.Get(ctx, "k"); ok {
		t.Fatal("the key is still there")
	}
	code, _, stderr = graft(t, "kv", "del", "--api", sock, "--cas", cur, "k")
	if code != exitCompareFailed || !strings.Contains(stderr, `key "k" does not exist`) {
		t.Errorf("del --cas of a missing key: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := graft(t, "kv", "del", "--api", sock, "--cas", "0", "k"); code != 0 {
		t.Errorf("del --cas 0 of a missing key: exit %d: %s", code, stderr)
	}
	for _, bad := range []string{"-1", "x", "1.5"} {
		if code, _, stderr := graft(t, "kv", "put", "--api", sock, "--cas", bad, "k", "v"); code != exitUsage || !strings.Contains(stderr, "cas") {
			t.Errorf("--cas %s: exit %d, stderr %q, want %d", bad, code, stderr, exitUsage)
		}
	}
	if _, ok, _ := w.Get(ctx, "k"); ok {
		t.Error("a put with a bad --cas wrote the key")
	}
}
