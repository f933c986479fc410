package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// mgmt's examples/yaml/hostname.yaml and msg1.yaml, as they are, pass graft
// check; the msg example with its warning that the timer's ticks reach
// nothing (its edge has no notify).
func TestCheckAcceptsMgmtHostnameAndMsgExamples(t *testing.T) {
	dir := t.TempDir()
	hostname := writeGraph(t, dir, "hostname.yaml", `---
graph: mygraph
resources:
  hostname:
  - name: Hostname Watcher @ TestHost
    hostname: test.hostname.example.com
edges: []
`)
	msg := writeGraph(t, dir, "msg1.yaml", `---
graph: mygraph
comment: timer example
resources:
  timer:
  - name: timer1
    interval: 30
  msg:
  - name: msg1
    body: mgmt logged this message
    journal: true
edges:
- name: e1
  from:
    kind: timer
    name: timer1
  to:
    kind: msg
    name: msg1
`)
	code, stdout, stderr := graft(t, "check", hostname, msg)
	if code != 0 || strings.Count(stdout, ": ok") != 2 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stderr, filepath.Base(hostname)) {
		t.Errorf("warnings about hostname.yaml: %q", stderr)
	}

	bad := writeGraph(t, dir, "bad.yaml", "resources:\n  hostname:\n  - name: h\n    static_hostname: \"no spaces\"\n  msg:\n  - name: m\n    priority: loud\n")
	code, _, stderr = graft(t, "check", bad)
	for _, want := range []string{"bad.yaml:4:5: hostname \"h\": static_hostname:", "bad.yaml:7:5: msg \"m\": priority:"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want it to contain %q", code, stderr, want)
		}
	}
}
