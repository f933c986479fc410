package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api/apitest"
	apiserver "github.com/graftcm/graft/api/server"
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
		if code != 0 || stdout != "port = 8080" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	code, stdout, stderr := graft(t, "kv", "get", "--api", sock, "missing")
	if code != 1 || stdout != "" || !strings.Contains(stderr, `key "missing" not found`) {
		t.Errorf("missing key: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, args := range [][]string{{"kv", "get", "--api", sock}, {"kv", "get", "--api", sock, "a", "b"}} {
		if code, _, _ := graft(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// Values are printed as they are, even if they are not text.
func TestKVGetPrintsRawBytes(t *testing.T) {
	sock, w := testAPI(t)
	if _, err := w.Put(t.Context(), "bin", []byte{0xff, 0, '\n'}); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := graft(t, "kv", "get", "--api", sock, "bin"); code != 0 || stdout != "\xff\x00\n" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

// kv get prints the value byte for byte: 16 bytes in, the same 16 out, not
// 17 with a newline added, so that `graft kv get k > f` copies the value.
func TestKVGetAddsNoNewlineToTheValue(t *testing.T) {
	sock, _ := testAPI(t)
	for _, v := range []string{"0123456789abcdef", "ends its line\n", "two\nlines", ""} {
		if code, _, stderr := graftIn(t, v, "kv", "put", "--api", sock, "k", "-"); code != 0 {
			t.Fatalf("put %q: exit %d: %s", v, code, stderr)
		}
		code, stdout, stderr := graft(t, "kv", "get", "--api", sock, "k")
		if code != 0 || stdout != v {
			t.Errorf("put %d bytes %q, got %d bytes %q (exit %d, stderr %q)", len(v), v, len(stdout), stdout, code, stderr)
		}
	}
}

// On a terminal, a value that leaves its last line open is followed by a
// newline, so that the prompt starts on a line of its own; one that ends
// its line gets nothing more.
func TestKVGetOnATerminalEndsTheLastLine(t *testing.T) {
	term := openTerminal(t)
	sock, w := testAPI(t)
	for k, v := range map[string]string{"open": "no newline", "closed": "ends\n"} {
		if _, err := w.Put(t.Context(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"open", "closed"} {
		var stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: term.tty, stderr: &stderr, hard: make(chan struct{})}
		if code := runEnv(t.Context(), e, []string{"graft", "kv", "get", "--api", sock, k}); code != 0 {
			t.Fatalf("get %s: exit %d: %s", k, code, stderr.String())
		}
	}
	if _, err := term.tty.WriteString("END"); err != nil {
		t.Fatal(err)
	}
	term.out.waitFor(t, 10*time.Second, "END")
	// The terminal shows "\n" as "\r\n".
	if got, want := term.out.String(), "no newline\r\nends\r\nEND"; got != want {
		t.Errorf("the terminal shows %q, want %q", got, want)
	}
}

// An answer from a node that has not heard from a leader for a while comes
// with a warning on stderr saying how long; stdout holds the value alone.
func TestKVGetWarnsOnStderrWhenNodeLostItsLeader(t *testing.T) {
	node := &apitest.FakeNode{}
	sock, w, _ := testAPIWith(t, func(c *apiserver.Config) { c.Node = node })
	if _, err := w.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		contact time.Time
		leader  string
		args    []string
		warning string // in stderr; "" for none
	}{
		{time.Now().Add(-30 * time.Second), "", nil, "last heard from a cluster leader"},
		{time.Time{}, "", nil, "has not heard from a cluster leader since it started"},
		{time.Now().Add(-30 * time.Second), "", []string{"--linearizable"}, ""}, // through the leader
		{time.Now().Add(-time.Second), "node1", nil, ""},
		{time.Now(), "node0", nil, ""},
	} {
		node.SetLeader(tc.contact, tc.leader)
		code, stdout, stderr := graft(t, append(append([]string{"kv", "get", "--api", sock}, tc.args...), "k")...)
		if code != 0 || stdout != "v" {
			t.Errorf("contact %v ago %v: exit %d, stdout %q", time.Since(tc.contact).Round(time.Second), tc.args, code, stdout)
		}
		if tc.warning == "" && stderr != "" || tc.warning != "" && !strings.Contains(stderr, "warning: the agent's node "+tc.warning) {
			t.Errorf("contact %v ago %v: stderr %q, want warning %q", time.Since(tc.contact).Round(time.Second), tc.args, stderr, tc.warning)
		}
		if ago, ok := warnedAge(stderr); ok && (ago < 30 || ago > time.Since(tc.contact).Seconds()+0.1) { // printed rounded to 0.1s
			t.Errorf("warned of a contact %.1fs ago, want %v", ago, time.Since(tc.contact))
		}
	}
	// A missing key from a stale node: the warning, then the error.
	node.SetLeader(time.Now().Add(-time.Minute), "")
	code, _, stderr := graft(t, "kv", "get", "--api", sock, "missing")
	if ago, ok := warnedAge(stderr); code != 1 || !ok || ago < 60 || !strings.Contains(stderr, `key "missing" not found`) {
		t.Errorf("missing key on a stale node: exit %d, stderr %q", code, stderr)
	}
}

// warnedAge returns the age of the last leader contact a stale-read
// warning names, in seconds.
func warnedAge(stderr string) (float64, bool) {
	m := regexp.MustCompile(`last heard from a cluster leader ([0-9.]+)s ago`).FindStringSubmatch(stderr)
	if m == nil {
		return 0, false
	}
	ago, err := strconv.ParseFloat(m[1], 64)
	return ago, err == nil
}
