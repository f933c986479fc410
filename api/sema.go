package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SemaLine is one line of the stream that holds a semaphore slot; see the
// package documentation. Exactly one of Granted, Keepalive, Lost and
// Released is set.
type SemaLine struct {
	// Granted marks the first line: the slot of semaphore ID (Count
	// slots) is held, with fencing token Token, granted when the agent's
	// state was at revision Rev. KeepaliveMS is how often, in
	// milliseconds, the agent sends a Keepalive line while the slot is
	// held.
	Granted     bool   `json:"granted,omitempty"`
	ID          string `json:"id,omitempty"`
	Count       int64  `json:"count,omitempty"`
	Token       uint64 `json:"token,omitempty"`
	Rev         uint64 `json:"rev,omitempty"`
	KeepaliveMS int64  `json:"keepalive_ms,omitempty"`
	// Keepalive says the agent still holds the slot.
	Keepalive bool `json:"keepalive,omitempty"`
	// Lost, the last line, says the slot may be gone (Error says why):
	// stop using what it guards.
	Lost bool `json:"lost,omitempty"`
	// Released, the last line, says a release request gave the slot back.
	Released bool `json:"released,omitempty"`
	// Error says why the slot was lost.
	Error string `json:"error,omitempty"`
}

// SemaReleased is the answer of a release.
type SemaReleased struct {
	Released bool `json:"released"`
}

// ErrSlotLost is matched by Slot.Err once the slot may be gone.
var ErrSlotLost = errors.New("semaphore slot lost")

// SilenceFactor is how many keepalive intervals a Slot waits for a line
// from the agent before it counts the slot as lost: the agent may be
// frozen, or its host cut off, and the cluster will free the slot.
const SilenceFactor = 3

// Slot is a slot of a cluster-wide semaphore held through an agent's API:
// the agent holds it while the request that took it stays open. It is held
// until Release, or until it is lost (Lost).
type Slot struct {
	c      *Client
	id     string
	token  uint64
	rev    uint64
	body   io.ReadCloser
	cancel context.CancelFunc // ends the request: the agent releases the slot
	done   chan struct{}      // closed when follow returns

	lost      chan struct{}
	lostOnce  sync.Once
	mu        sync.Mutex
	err       error // why the slot was lost
	releasing bool  // Release has begun: the stream's end is expected

	releaseOnce sync.Once
	releaseErr  error
}

// semaPath is the path of semaphore id's endpoint, escaped as keyPath
// escapes a key.
func semaPath(id string) string {
	esc := url.PathEscape(id)
	if esc == "." || esc == ".." {
		esc = strings.ReplaceAll(esc, ".", "%2E")
	}
	return "/v1/sema/" + esc
}

// Acquire takes a slot of the cluster-wide semaphore id, which has count
// slots, waiting in the cluster's FIFO queue until one is free. If ctx
// ends first, the request is dropped and the agent gives up the place in
// the queue. Once granted, ctx no longer matters: the slot is held until
// Release, or until it is lost. Every acquirer of id, graphs' "@@id"
// included, must give the same count.
func (c *Client) Acquire(ctx context.Context, id string, count int64) (*Slot, error) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopWait := context.AfterFunc(ctx, cancel)
	q := url.Values{"count": {strconv.FormatInt(count, 10)}}
	resp, err := c.do(hctx, http.MethodPost, semaPath(id), q, nil)
	if !stopWait() { // ctx ended while waiting: the dropped request leaves the queue
		cancel()
		if err == nil {
			resp.Body.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	s := &Slot{c: c, id: id, body: resp.Body, cancel: cancel, done: make(chan struct{}), lost: make(chan struct{})}
	dec := json.NewDecoder(resp.Body)
	var first SemaLine
	if err := dec.Decode(&first); err != nil || !first.Granted {
		cancel()
		resp.Body.Close()
		if err == nil {
			err = errors.New("it does not begin with a granted line")
		}
		return nil, fmt.Errorf("api: the stream of semaphore %q from %s: %w", id, c.addr, err)
	}
	s.token, s.rev = first.Token, first.Rev
	silence := SilenceFactor * time.Duration(max(first.KeepaliveMS, 1)) * time.Millisecond
	go s.follow(dec, silence)
	return s, nil
}

// ID returns the semaphore's id.
func (s *Slot) ID() string { return s.id }

// Token returns the slot's fencing token: larger than that of every
// earlier holder of the semaphore. Hand it to what the slot guards, so
// that it can refuse a holder whose slot has gone.
func (s *Slot) Token() uint64 { return s.token }

// Rev returns the revision of the agent's state when the slot was granted.
func (s *Slot) Rev() uint64 { return s.rev }

// Lost is closed when the slot may be gone without Release: the agent
// said so (the cluster took it back, or the agent lost touch with the
// cluster's leader, or it is stopping), the stream broke (the agent
// died), or the agent sent nothing for SilenceFactor keepalive intervals
// (it is frozen or cut off). Stop using what the slot guards when it
// closes. Err says why.
func (s *Slot) Lost() <-chan struct{} { return s.lost }

// Err returns nil while the slot is held, and an error matching
// ErrSlotLost, saying why, once Lost is closed.
func (s *Slot) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// lose records why the slot is lost and closes Lost, unless Release has
// begun.
func (s *Slot) lose(why string) {
	s.mu.Lock()
	if s.releasing || s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = fmt.Errorf("%w: semaphore %q token %d: %s", ErrSlotLost, s.id, s.token, why)
	s.mu.Unlock()
	s.lostOnce.Do(func() { close(s.lost) })
}

// follow reads the stream until it ends, and counts the slot as lost if
// it ends otherwise than by Release, or falls silent for silence. It ends
// when the stream does: Release and a silence end it.
func (s *Slot) follow(dec *json.Decoder, silence time.Duration) {
	defer close(s.done)
	quiet := time.AfterFunc(silence, func() {
		s.lose(fmt.Sprintf("the agent sent nothing for %v (frozen, or its host cut off?)", silence))
		s.cancel() // if the agent is alive after all, the dropped request gives the slot back
	})
	defer quiet.Stop()
	for {
		var l SemaLine
		err := dec.Decode(&l)
		switch {
		case err != nil:
			s.lose(fmt.Sprintf("the stream from the agent broke: %v", err))
			return
		case l.Lost:
			s.lose(fmt.Sprintf("the agent says: %s", l.Error))
			return
		case l.Released:
			return
		}
		quiet.Reset(silence)
	}
}

// Release gives the slot back, and returns once the agent has given it
// back to the cluster, or could not: the error then says why (a slot the
// cluster cannot be told about is freed when it declares this host dead,
// or when the agent reaches it again). A slot already lost needs no
// release. The stream is closed in any case. Release is idempotent.
func (s *Slot) Release(ctx context.Context) error {
	s.releaseOnce.Do(func() {
		s.mu.Lock()
		s.releasing = true
		lost := s.err != nil
		s.mu.Unlock()
		defer func() {
			s.cancel()
			s.body.Close()
			<-s.done
		}()
		if lost {
			return // the agent gave it back as it said it was lost, or as the stream broke
		}
		q := url.Values{"token": {strconv.FormatUint(s.token, 10)}}
		var r SemaReleased
		err := s.c.call(ctx, http.MethodDelete, semaPath(s.id), q, nil, &r)
		if StatusCode(err) == http.StatusNotFound {
			err = nil // the request ended first (the agent stopping, say), which gave it back
		}
		if err != nil {
			s.releaseErr = fmt.Errorf("api: releasing semaphore %q token %d: %w", s.id, s.token, err)
		}
	})
	return s.releaseErr
}
