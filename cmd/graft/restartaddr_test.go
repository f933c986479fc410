package main

import (
	"path/filepath"
	"testing"
)

// Issue 9: restarted on another cluster address, a node kept its old one
// in raft, so `graft status` listed it there for good. Its servers list
// follows the node to its new address.
func TestStatusShowsTheNewAddressAfterARestartOnAnotherPort(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	a := startTestAgent(t, data, "h1")
	old := statusOf(t, "--data-dir", data).Address
	a.stop()
	b := startTestAgent(t, data, "h1") // on another port: tests bind port 0
	st := statusOf(t, "--data-dir", data)
	if st.Address == old {
		t.Fatalf("the restarted node has its old address %s again; the test needs another", old)
	}
	waitUntil(t, "the servers list showing the new address", func() (bool, error) {
		var err error
		st, err = tryStatus(t, "--data-dir", data)
		return len(st.Servers) == 1 && st.Servers[0].Address == st.Address, err
	})
	b.stop()
}
