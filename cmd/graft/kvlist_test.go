package main

import (
	"encoding/json"
	"testing"

	"github.com/graftcm/graft/api"
)

func TestKVList(t *testing.T) {
	sock, w := testAPI(t)
	for k, v := range map[string]string{"app/b": "2", "app/a": "1", "app/multi": "x\ny", "apple": "no", "bin": "\xff"} {
		if _, err := w.Put(t.Context(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := graft(t, "kv", "list", "--api", sock, "app/")
	if want := "app/a=1\napp/b=2\napp/multi=\"x\\ny\"\n"; code != 0 || stdout != want {
		t.Errorf("list app/: exit %d, stdout %q, want %q; stderr %q", code, stdout, want, stderr)
	}
	code, stdout, _ = graft(t, "kv", "ls", "--api", sock, "--linearizable")
	if want := "app/a=1\napp/b=2\napp/multi=\"x\\ny\"\napple=no\nbin=\"\\xff\"\n"; code != 0 || stdout != want {
		t.Errorf("list: exit %d, stdout %q, want %q", code, stdout, want)
	}
	code, stdout, _ = graft(t, "kv", "list", "--api", sock, "--json", "b")
	var l api.List
	if err := json.Unmarshal([]byte(stdout), &l); err != nil || code != 0 {
		t.Fatalf("list --json: exit %d, %q: %v", code, stdout, err)
	}
	if len(l.KVs) != 1 || string(l.KVs[0].Value) != "\xff" || l.Rev != w.Rev() {
		t.Errorf("list --json: %+v", l)
	}
	if code, stdout, _ := graft(t, "kv", "list", "--api", sock, "nothing/"); code != 0 || stdout != "" {
		t.Errorf("empty list: exit %d, %q", code, stdout)
	}
	if code, _, _ := graft(t, "kv", "list", "--api", sock, "a", "b"); code != 2 {
		t.Errorf("two prefixes: exit %d, want 2", code)
	}
}
