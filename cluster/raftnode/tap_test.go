package raftnode_test

import (
	"testing"
	"time"
)

// eventually waits (in fake time) for cond, failing after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-time.After(20 * time.Millisecond)
	}
	return time.Since(t0)
}
