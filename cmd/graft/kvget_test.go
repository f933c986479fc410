package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestKVGet(t *testing.T) {
	sock, w := testAPI(t)
	if _, err := w.Put(t.Context(), "app/config", []byte("port = 8080")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"kv", "get", "--api", sock, "app/config"},
		{"kv", "get", "--api", sock, "--linearizable", "app/config"},
		{"kv", "get", "--data-dir", filepath.Dir(sock), "app/config"},
	} {
		code, stdout, stderr := graft(t, args...)
		if code != 0 || stdout != "port = 8080\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	code, stdout, stderr := graft(t, "kv", "get", "--api", sock, "missing")
	if code != 1 || stdout != "" || !strings.Contains(stderr, `key "missing" not found`) {
		t.Errorf("missing key: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, args := range [][]string{{"kv", "get", "--api", sock}, {"kv", "get", "--api", sock, "a", "b"}} {
		if code, _, _ := graft(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// Values are printed as they are, even if they are not text.
func TestKVGetPrintsRawBytes(t *testing.T) {
	sock, w := testAPI(t)
	if _, err := w.Put(t.Context(), "bin", []byte{0xff, 0, '\n'}); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := graft(t, "kv", "get", "--api", sock, "bin"); code != 0 || stdout != "\xff\x00\n\n" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}
