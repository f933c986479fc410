package main

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/cluster/clusterkey"
)

// keygen prints a new key each time, in the form --token takes.
func TestKeygen(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		code, stdout, stderr := graft(t, "keygen")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if _, err := clusterkey.Parse(stdout); err != nil || !strings.HasSuffix(stdout, "\n") {
			t.Errorf("keygen printed %q: %v", stdout, err)
		}
		seen[stdout] = true
	}
	if len(seen) != 2 {
		t.Error("keygen printed the same key twice")
	}
}
