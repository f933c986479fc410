package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// Semaphores takes slots of cluster-wide semaphores. *world.World
// satisfies it.
type Semaphores interface {
	// AcquireSlot waits until ctx ends for a slot of semaphore id (count
	// slots), and returns its fencing token, a channel closed if it is
	// lost, and the function that gives it back.
	AcquireSlot(ctx context.Context, id string, count int64) (uint64, <-chan struct{}, func(context.Context) error, error)
}

var _ Semaphores = (*world.World)(nil)

// DefaultMaxSemaRequests is Config.MaxSemaRequests's default.
const DefaultMaxSemaRequests = 256

// DefaultSemaKeepalive is Config.SemaKeepalive's default.
const DefaultSemaKeepalive = time.Second

// holds are the semaphore requests open on a server: how many, against
// the cap, and the slots they hold, by semaphore and token, for releases.
type holds struct {
	mu   sync.Mutex
	open int
	held map[holdKey]*hold
}

type holdKey struct {
	id    string
	token uint64
}

// hold is a slot held by an open request.
type hold struct {
	id      string
	count   int64
	token   uint64
	lost    <-chan struct{}
	release func(context.Context) error
	asked   chan chan error // a release request hands its reply channel over
	done    chan struct{}   // closed when the request has ended
}

// enter counts a request in, unless limit are open already.
func (h *holds) enter(limit int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open >= limit {
		return false
	}
	h.open++
	return true
}

func (h *holds) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open--
}

func (h *holds) add(k holdKey, hd *hold) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[holdKey]*hold{}
	}
	h.held[k] = hd
}

func (h *holds) remove(k holdKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.held, k)
}

func (h *holds) find(k holdKey) *hold {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[k]
}

// semaID returns the request's semaphore id, checked.
func semaID(r *http.Request) (string, error) {
	return pathName(r, "id", "id: ", "semaphore id", fsm.MaxNameSize)
}

// semaCount returns the request's count parameter, 1 if absent.
func semaCount(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("count")
	if v == "" {
		return 1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > fsm.MaxSemaCount {
		return 0, badf("count=%q: want a number of slots from 1 to %d", v, fsm.MaxSemaCount)
	}
	return n, nil
}

// semaAcquire holds a slot of a semaphore for as long as the request
// stays open; see the package documentation.
func (s *Server) semaAcquire(w http.ResponseWriter, r *http.Request) {
	// net/http notices a client gone only once its body is read: a hold
	// with an unread body would outlive its client.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		writeError(w, http.StatusBadRequest, "a semaphore request has no body")
		return
	}
	id, err := semaID(r)
	if err != nil {
		fail(w, err)
		return
	}
	count, err := semaCount(r)
	if err != nil {
		fail(w, err)
		return
	}
	if s.cfg.Semaphores == nil {
		writeError(w, http.StatusNotImplemented, "this agent serves no cluster semaphores")
		return
	}
	if !s.holds.enter(s.cfg.MaxSemaRequests) {
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
			"too many semaphore requests open on this agent: at most %d at once, waiting or holding", s.cfg.MaxSemaRequests))
		return
	}
	// done closes once the request no longer counts against the cap (the
	// deferred calls run in reverse order).
	done := make(chan struct{})
	defer close(done)
	defer s.holds.leave()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // ends with the request
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	token, lost, release, err := s.cfg.Semaphores.AcquireSlot(ctx, id, count)
	if err != nil {
		s.acquireFailed(w, r, id, err)
		return
	}
	s.hold(w, r, &hold{id: id, count: count, token: token, lost: lost, release: release, asked: make(chan chan error), done: done})
}

// acquireFailed answers a request whose slot was not granted.
func (s *Server) acquireFailed(w http.ResponseWriter, r *http.Request, id string, err error) {
	switch {
	case r.Context().Err() != nil:
		// The client went away: the World gave up the place in the queue.
	case isClosed(s.stopping):
		writeError(w, http.StatusServiceUnavailable, "the agent is stopping")
	case errors.Is(err, world.ErrRefused):
		writeError(w, http.StatusConflict, fmt.Sprintf("semaphore %q: %v", id, err))
	default:
		fail(w, err)
	}
}

// hold streams a granted slot's lines until the slot is released or lost.
func (s *Server) hold(w http.ResponseWriter, r *http.Request, hd *hold) {
	id, token := hd.id, hd.token
	key := holdKey{id, token}
	s.holds.add(key, hd)
	defer s.holds.remove(key)
	giveBack := func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.Timeout)
		defer cancel()
		err := hd.release(ctx)
		if err != nil {
			// The World keeps the slot as orphaned; the agent gives it
			// back once it reaches the cluster.
			s.log.Warn("local API: could not give back a semaphore slot", "sema", id, "token", token, "err", err)
		}
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(l api.SemaLine) bool { return enc.Encode(l) == nil && rc.Flush() == nil }
	send(api.SemaLine{Granted: true, ID: id, Count: hd.count, Token: token, Rev: s.cfg.Store.Rev(),
		KeepaliveMS: s.cfg.SemaKeepalive.Milliseconds()})
	tick := time.NewTicker(s.cfg.SemaKeepalive)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			send(api.SemaLine{Keepalive: true}) // a client gone ends the request's context
		case <-hd.lost:
			send(api.SemaLine{Lost: true, Error: "the cluster took the slot back, or this agent lost touch with the cluster's leader"})
			giveBack()
			return
		case <-s.stopping:
			send(api.SemaLine{Lost: true, Error: "the agent is stopping: the slot is given back"})
			giveBack()
			return
		case reply := <-hd.asked:
			err := giveBack()
			reply <- err
			if err == nil {
				send(api.SemaLine{Released: true})
			} else {
				send(api.SemaLine{Lost: true, Error: fmt.Sprintf("giving the slot back failed (the agent retries): %v", err)})
			}
			return
		case <-r.Context().Done():
			giveBack() // the client closed the request
			return
		}
	}
}

// semaRelease gives back the slot that a request of this server holds.
func (s *Server) semaRelease(w http.ResponseWriter, r *http.Request) {
	id, err := semaID(r)
	if err != nil {
		fail(w, err)
		return
	}
	v := r.URL.Query().Get("token")
	token, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		fail(w, badf("token=%q: want the fencing token of the slot to release", v))
		return
	}
	hd := s.holds.find(holdKey{id, token})
	if hd == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no slot of semaphore %q with token %d is held through this agent's API", id, token))
		return
	}
	reply := make(chan error, 1)
	select {
	case hd.asked <- reply:
	case <-hd.done:
		writeError(w, http.StatusNotFound, fmt.Sprintf("the slot of semaphore %q with token %d was already given back", id, token))
		return
	case <-r.Context().Done():
		return
	}
	err = <-reply
	<-hd.done // the request ends at once: it no longer counts against the cap
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SemaReleased{Released: true})
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
