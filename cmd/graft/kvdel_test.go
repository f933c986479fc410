package main

import "testing"

func TestKVDel(t *testing.T) {
	sock, w := testAPI(t)
	if _, err := w.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := graft(t, "kv", "del", "--api", sock, "k"); code != 0 {
		t.Fatalf("del: exit %d: %s", code, stderr)
	}
	if _, ok, _ := w.Get(t.Context(), "k"); ok {
		t.Error("the key is still there")
	}
	// Deleting a missing key is fine; so is the long name.
	if code, _, stderr := graft(t, "kv", "delete", "--api", sock, "k"); code != 0 {
		t.Errorf("delete of a missing key: exit %d: %s", code, stderr)
	}
	if code, _, _ := graft(t, "kv", "del", "--api", sock, "_graft/x"); code != 1 {
		t.Errorf("delete of a reserved key: exit %d, want 1", code)
	}
}
