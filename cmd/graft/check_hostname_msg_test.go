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
	hostname := filepath.Join(mgmtExamplesDir, "hostname.yaml")
	msg := filepath.Join(mgmtExamplesDir, "msg1.yaml")
	code, stdout, stderr := graft(t, "check", hostname, msg)
	if code != 0 || strings.Count(stdout, ": ok") != 2 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stderr, filepath.Base(hostname)) {
		t.Errorf("warnings about hostname.yaml: %q", stderr)
	}

	bad := writeGraph(t, t.TempDir(), "bad.yaml", "resources:\n  hostname:\n  - name: h\n    static_hostname: \"no spaces\"\n  msg:\n  - name: m\n    priority: loud\n")
	code, _, stderr = graft(t, "check", bad)
	for _, want := range []string{"bad.yaml:4:5: hostname \"h\": static_hostname:", "bad.yaml:7:5: msg \"m\": priority:"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want it to contain %q", code, stderr, want)
		}
	}
}
