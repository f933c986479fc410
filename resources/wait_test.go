package resources

import (
	"testing"
	"time"
)

// eventually polls cond, which reads the real system (files, the account
// and package databases), until it holds, failing with what after limit.
// It is the one poll of this package's tests: what they wait for is made
// by other processes, with no notification a test can wait on.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(limit, cond) {
		t.Fatalf("not within %v: %s", limit, what)
	}
}

// poll polls cond until it holds or limit passes, and reports
// whether it held.
func poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
