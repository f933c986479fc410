package main

import (
	"strings"
	"testing"
)

// An mgmt-style graph that writes a unit file and keeps the service running
// and enabled, restarting it when the file changes, passes graft check;
// bad svc parameters fail it at their line.
func TestCheckAcceptsAnMgmtStyleSvcGraph(t *testing.T) {
	dir := t.TempDir()
	good := writeGraph(t, dir, "svc.yaml", `---
graph: mygraph
resources:
  file:
  - name: unit
    path: /etc/systemd/system/graft-demo.service
    content: |
      [Unit]
      Description=demo
      [Service]
      ExecStart=/bin/sleep infinity
      [Install]
      WantedBy=multi-user.target
    state: exists
  svc:
  - name: graft-demo
    state: running
    startup: enabled
  - name: dbus
    session: true
edges:
- name: e1
  from:
    kind: file
    name: unit
  to:
    kind: svc
    name: graft-demo
  notify: true
`)
	code, stdout, stderr := graft(t, "check", good)
	if code != 0 || !strings.Contains(stdout, ": ok") || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	bad := writeGraph(t, dir, "bad.yaml", "resources:\n  svc:\n  - name: graft-demo\n    state: up\n")
	code, _, stderr = graft(t, "check", bad)
	if want := `bad.yaml:4:5: svc "graft-demo": state: "up" is not running or stopped`; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want it to contain %q", code, stderr, want)
	}
}
