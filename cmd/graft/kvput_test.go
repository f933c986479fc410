package main

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/fsm"
)

func TestKVPut(t *testing.T) {
	sock, w := testAPI(t)
	code, stdout, stderr := graft(t, "kv", "put", "--api", sock, "a/b", "1")
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("put: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	kv, ok, err := w.Get(t.Context(), "a/b")
	if err != nil || !ok || string(kv.Value) != "1" {
		t.Errorf("the World has %q (found %v, %v), want 1", kv.Value, ok, err)
	}

	code, _, stderr = graft(t, "kv", "put", "--api", sock, "_graft/mine", "1")
	if code != 1 || !strings.Contains(stderr, "_graft/") {
		t.Errorf("put of a reserved key: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{{"kv", "put", "--api", sock, "k"}, {"kv", "put", "--api", sock, "k", "v", "w"}} {
		if code, _, _ := graft(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// A value of - is read from standard input, byte for byte.
func TestKVPutFromStdin(t *testing.T) {
	sock, w := testAPI(t)
	in := "line one\nline two\n\x00\xff"
	if code, _, stderr := graftIn(t, in, "kv", "put", "--api", sock, "k", "-"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if kv, _, _ := w.Get(t.Context(), "k"); string(kv.Value) != in {
		t.Errorf("value %q, want %q", kv.Value, in)
	}
	big := strings.Repeat("x", fsm.MaxValueSize+1)
	if code, _, stderr := graftIn(t, big, "kv", "put", "--api", sock, "k", "-"); code != 1 || !strings.Contains(stderr, "larger than") {
		t.Errorf("too large a value: exit %d, stderr %q", code, stderr)
	}
}
