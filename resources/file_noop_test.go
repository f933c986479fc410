package resources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 9, item 8: with apply off (--noop) a file resource said nothing
// about what it would change.
func TestNoopFileLogsOneLineOfWhatWouldChange(t *testing.T) {
	dir := t.TempDir()
	const (
		old    = "alpha\nsecret-old\ngamma\n"
		wanted = "alpha\nsecret-new\nsecret-more\ngamma\n"
	)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f, logs := newLoggedFile(t, &File{Path: p, Content: strptr(wanted), Mode: "0600"})
	converge(t, f, false, false)
	recs := logs.take()
	rec := only(t, recs, "would change")
	want := map[string]string{
		"path": p, "action": "update", "mode": "0644 -> 0600",
		"content": "23 -> 35 bytes, -1 +2 lines",
	}
	for k, v := range want {
		if rec.attrs[k] != v {
			t.Errorf("logged %s = %q, want %q", k, rec.attrs[k], v)
		}
	}
	for _, r := range recs {
		for k, v := range r.attrs {
			if strings.Contains(v, "secret") {
				t.Errorf("record %q attribute %s shows the content: %q", r.msg, k, v)
			}
		}
	}
	if got := readFile(t, p); got != old {
		t.Fatalf("apply=false changed the content to %q", got)
	}

	// Would create, and would remove: one line each.
	created := filepath.Join(dir, "new", "g")
	f, logs = newLoggedFile(t, &File{Path: created, Content: strptr("one\ntwo"), Mode: "0640"})
	converge(t, f, false, false)
	rec = only(t, logs.take(), "would change")
	for k, v := range map[string]string{"action": "create", "kind": "file", "content": "7 bytes, 2 lines", "mode": "0640"} {
		if rec.attrs[k] != v {
			t.Errorf("create: logged %s = %q, want %q", k, rec.attrs[k], v)
		}
	}
	if _, err := os.Lstat(filepath.Dir(created)); err == nil {
		t.Error("apply=false created the parent directory")
	}
	f, logs = newLoggedFile(t, &File{Path: p, State: "absent"})
	converge(t, f, false, false)
	if rec = only(t, logs.take(), "would change"); rec.attrs["action"] != "remove" {
		t.Errorf("remove: logged action = %q, want remove", rec.attrs["action"])
	}
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("apply=false removed the file: %v", err)
	}

	// In state: nothing to say.
	f, logs = newLoggedFile(t, &File{Path: p, Content: strptr(old)})
	converge(t, f, false, true)
	if recs := logs.take(); len(recs) != 0 {
		t.Errorf("a file in state logged %v", recs)
	}
}

func TestLineChanges(t *testing.T) {
	for _, tc := range []struct {
		a, b           string
		removed, added int
	}{
		{"", "", 0, 0},
		{"", "a\nb\n", 0, 2},
		{"a\nb\n", "", 2, 0},
		{"a\nb\nc\n", "a\nx\nc\n", 1, 1},
		{"a\nb", "a\nb\n", 1, 1},
		{"a\na\n", "a\na\na\n", 0, 1},
	} {
		r, a := lineChanges([]byte(tc.a), []byte(tc.b))
		if r != tc.removed || a != tc.added {
			t.Errorf("lineChanges(%q, %q) = -%d +%d, want -%d +%d", tc.a, tc.b, r, a, tc.removed, tc.added)
		}
	}
}
