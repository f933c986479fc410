package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stubAgent serves handler on a unix socket until the test ends, and
// returns a client of it.
func stubAgent(t *testing.T, handler http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "graft.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: handler}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		hs.Close()
		<-done
	})
	return c
}

// grant writes the first line of a hold.
func grant(w http.ResponseWriter, keepalive time.Duration) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	json.NewEncoder(w).Encode(SemaLine{Granted: true, ID: "db", Count: 1, Token: 7, Rev: 7, KeepaliveMS: keepalive.Milliseconds()})
	http.NewResponseController(w).Flush()
}

// waitLost waits for s's Lost, failing after a while.
func waitLost(t *testing.T, s *Slot) {
	t.Helper()
	select {
	case <-s.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("Lost not closed")
	}
}

// An agent that falls silent (frozen, or its host cut off) loses the slot
// for its client after SilenceFactor keepalive intervals, and the client
// drops the request, so that the agent, if it wakes, gives the slot back.
func TestSlotOfASilentAgentIsLost(t *testing.T) {
	dropped := make(chan struct{})
	c := stubAgent(t, func(w http.ResponseWriter, r *http.Request) {
		grant(w, 30*time.Millisecond)
		<-r.Context().Done() // frozen: never another line
		close(dropped)
	})
	s, err := c.Acquire(t.Context(), "db", 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Token() != 7 || s.Rev() != 7 {
		t.Errorf("token %d rev %d, want 7 and 7", s.Token(), s.Rev())
	}
	waitLost(t, s)
	if err := s.Err(); !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), "sent nothing for 90ms") {
		t.Errorf("Err: %v", err)
	}
	select {
	case <-dropped:
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not drop the request of a silent agent")
	}
	if err := s.Release(t.Context()); err != nil {
		t.Errorf("release of a lost slot: %v", err)
	}
}

// Keepalives keep a slot held past SilenceFactor keepalive intervals:
// only the agent's word ends it.
func TestSlotKeptByKeepalives(t *testing.T) {
	c := stubAgent(t, func(w http.ResponseWriter, r *http.Request) {
		grant(w, 100*time.Millisecond)
		enc, rc := json.NewEncoder(w), http.NewResponseController(w)
		tick := time.NewTicker(20 * time.Millisecond) // the agent's pace
		defer tick.Stop()
		for range 40 { // 0.8s, well past the 0.3s of silence that loses a slot
			<-tick.C
			enc.Encode(SemaLine{Keepalive: true})
			rc.Flush()
		}
		enc.Encode(SemaLine{Lost: true, Error: "the end of the test"})
	})
	s, err := c.Acquire(t.Context(), "db", 1)
	if err != nil {
		t.Fatal(err)
	}
	waitLost(t, s)
	if err := s.Err(); !strings.Contains(err.Error(), "the agent says: the end of the test") {
		t.Errorf("Err: %v, want the agent's last word", err)
	}
}

// A stream that breaks (the agent died) loses the slot.
func TestSlotOfADeadAgentIsLost(t *testing.T) {
	c := stubAgent(t, func(w http.ResponseWriter, r *http.Request) {
		grant(w, time.Hour)
		// Returning ends the stream, as the agent's death closes it.
	})
	s, err := c.Acquire(t.Context(), "db", 1)
	if err != nil {
		t.Fatal(err)
	}
	waitLost(t, s)
	if err := s.Err(); !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), "broke") {
		t.Errorf("Err: %v", err)
	}
}

// Release of a slot whose agent cannot give it back says so.
func TestSlotReleaseFailureIsReported(t *testing.T) {
	c := stubAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(ErrorBody{Error: "no leader"})
			return
		}
		grant(w, time.Hour)
		<-r.Context().Done()
	})
	s, err := c.Acquire(t.Context(), "db", 1)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Release(t.Context())
	if StatusCode(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no leader") {
		t.Errorf("release: %v, want the agent's 503", err)
	}
	if again := s.Release(t.Context()); again == nil || again.Error() != err.Error() {
		t.Errorf("a second release: %v, want the first's error", again)
	}
	select {
	case <-s.Lost():
		t.Errorf("Lost closed by Release: %v", s.Err())
	default:
	}
}

// A wait that ends with its context returns the context's error.
func TestSlotWaitEndsWithItsContext(t *testing.T) {
	entered := make(chan struct{})
	c := stubAgent(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // queued for ever
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-entered
		cancel()
	}()
	if _, err := c.Acquire(ctx, "db", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire: %v, want context.Canceled", err)
	}
}
