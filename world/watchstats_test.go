package world_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// A watch whose reader stops reading falls behind: WatchStats counts the
// revisions it has yet to deliver and how long it has had them; once the
// reader catches up both are zero, and a stopped watch is no longer
// counted.
func TestWatchStatsShowAWatchFallingBehindAndCatchingUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 1)
		w := ws[0]
		ctx, cancel := context.WithCancel(t.Context())
		evs := w.Watch(ctx, "w/", 0)
		synctest.Wait()
		if st := w.WatchStats(); st.Watches != 1 || st.LagRevisions != 0 || st.Lag != 0 {
			t.Fatalf("an idle watch: %+v, want 1 watch, no lag", st)
		}
		// The watch's channel buffers 16 batches: 40 writes, unread, each
		// taken by the watch before the next (a batch each), leave it
		// behind.
		for i := range 40 {
			if _, err := w.Put(t.Context(), fmt.Sprintf("w/k%d", i), []byte("v")); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		time.Sleep(5 * time.Second) // bubble time: the reader takes its time
		st := w.WatchStats()
		if st.LagRevisions < 40-17 || st.Lag < 5*time.Second {
			t.Errorf("a watch with 40 changes unread: %+v, want at least 23 revisions and 5s behind", st)
		}
		rev := w.Rev()
		for got := uint64(0); got < rev; {
			got = (<-evs).Rev
		}
		synctest.Wait()
		if st := w.WatchStats(); st.Watches != 1 || st.LagRevisions != 0 || st.Lag != 0 {
			t.Errorf("after the reader caught up: %+v, want 1 watch, no lag", st)
		}
		cancel()
		for range evs {
		}
		if st := w.WatchStats(); st.Watches != 0 {
			t.Errorf("after the watch stopped: %+v, want no watch", st)
		}
	})
}
