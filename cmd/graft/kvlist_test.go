package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
	apiserver "github.com/graftcm/graft/api/server"
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
	if code, _, _ := graft(t, "kv", "list", "--api", sock, "a", "b"); code != exitUsage {
		t.Errorf("two prefixes: exit %d, want %d", code, exitUsage)
	}
}

// kv list warns on stderr when the node has not heard from a leader for a
// while; --json carries the contact as the API's answer does.
func TestKVListWarnsOnStderrWhenNodeLostItsLeader(t *testing.T) {
	node := &apitest.FakeNode{}
	sock, w, _ := testAPIWith(t, func(c *apiserver.Config) { c.Node = node })
	if _, err := w.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	node.SetLeader(time.Now().Add(-10*time.Second), "")
	code, stdout, stderr := graft(t, "kv", "list", "--api", sock)
	if ago, ok := warnedAge(stderr); code != 0 || stdout != "k=v\n" || !ok || ago < 10 {
		t.Errorf("stale list: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = graft(t, "kv", "list", "--api", sock, "--json")
	var l struct {
		api.List
		api.Contact
	}
	if err := json.Unmarshal([]byte(stdout), &l); err != nil || code != 0 {
		t.Fatalf("list --json: exit %d, %q: %v", code, stdout, err)
	}
	if len(l.KVs) != 1 || l.LastContactMS < 10000 || l.KnownLeader {
		t.Errorf("list --json: %s", stdout)
	}
	node.SetLeader(time.Now(), "node0")
	if code, stdout, stderr := graft(t, "kv", "list", "--api", sock); code != 0 || stdout != "k=v\n" || stderr != "" {
		t.Errorf("list on the leader: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// kv list and kv watch print a value holding a tab, or any other character
// that is not printable, Go-quoted as documented: a raw tab looks like
// spaces and breaks tab-separated processing of the lines.
func TestKVListAndWatchQuoteATab(t *testing.T) {
	sock, w := testAPI(t)
	values := map[string]string{"tab": "a\tb", "cr": "a\rb", "esc": "\x1b[31mred"}
	var want strings.Builder
	for _, k := range []string{"cr", "esc", "tab"} {
		fmt.Fprintf(&want, "%s=%s\n", k, strconv.Quote(values[k]))
	}
	for k, v := range values {
		if _, err := w.Put(t.Context(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if code, stdout, stderr := graft(t, "kv", "list", "--api", sock); code != 0 || stdout != want.String() {
		t.Errorf("list: exit %d, stdout %q, want %q; stderr %q", code, stdout, want.String(), stderr)
	}

	out := newSyncBuffer()
	stop := startWatch(t, out, "--api", sock, "--rev", fmt.Sprint(w.Rev()), "tab")
	rev, err := w.Put(t.Context(), "tab", []byte("c\td"))
	if err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, 10*time.Second, fmt.Sprintf("rev=%d\n", rev))
	if got, want := out.String(), fmt.Sprintf("PUT tab=\"c\\td\" rev=%d\n", rev); got != want {
		t.Errorf("watch printed %q, want %q", got, want)
	}
	if code := stop(); code != 0 {
		t.Errorf("watch: exit %d after an interrupt, want 0", code)
	}
}
