// Package backoff paces the cluster's retries while a leader is elected:
// pauses of 5ms doubling to 100ms.
package backoff

import (
	"context"
	"time"
)

// Backoff is one series of retries' pauses.
type Backoff struct{ d time.Duration }

// New returns a series whose first pause is 5ms.
func New() *Backoff { return &Backoff{d: 5 * time.Millisecond} }

// Next returns the pause to make now and lengthens the next one.
func (b *Backoff) Next() time.Duration {
	d := b.d
	b.d = min(2*b.d, 100*time.Millisecond)
	return d
}

// Sleep makes the next pause, or returns ctx's error if it ends first.
func (b *Backoff) Sleep(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
