package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The pauses double from 5ms and stay at 100ms.
func TestBackoffDoublesUpTo100ms(t *testing.T) {
	b := New()
	want := []time.Duration{5, 10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Errorf("pause %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
}

// Sleep returns the context's error once it ends.
func TestBackoffSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := New().Sleep(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on an ended context: %v, want context.Canceled", err)
	}
}
