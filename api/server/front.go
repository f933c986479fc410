package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// A Front serves the local API on its listeners for a process's whole
// run, with one http.Server, and hands each request to the Server set
// current (Set). An agent restarts its cluster side, and with it its
// Server, to join or move to another cluster; the listeners, their
// connections and the http.Server stay. A request that comes while no
// Server is current, or that the old one, stopping, no longer takes,
// waits for the next one (up to the Front's wait), rather than being
// dropped: net/http drops a request it reads after its server's Shutdown
// began, so a side that shut its own http.Server down left about 1 call
// in 100 made during the restart with EOF.
type Front struct {
	wait time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	cur     *Server
	changed chan struct{} // closed when cur changes or the Front closes
	closed  bool
}

// NewFront returns a Front with no Server: requests wait for one up to
// wait, then are answered 503. log receives net/http's errors at debug
// (nil discards them).
func NewFront(wait time.Duration, log *slog.Logger) *Front {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Front{wait: wait, log: log, changed: make(chan struct{})}
}

// Set makes s the Server that takes requests from now on; nil: none
// until the next Set. The Server it replaces is not stopped: its caller
// stops it (Stop), after Set, and the requests it no longer takes go to
// s. Set after the Front has closed does nothing.
func (f *Front) Set(s *Server) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.cur = s
	close(f.changed)
	f.changed = make(chan struct{})
}

// current returns the current Server, a channel closed when that
// changes, and whether the Front has closed.
func (f *Front) current() (*Server, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.changed, f.closed
}

// close makes every request from now on, and those waiting, answer that
// the agent stops; it returns the Server that was current.
func (f *Front) close() *Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.cur
	if !f.closed {
		f.closed, f.cur = true, nil
		close(f.changed)
	}
	return s
}

// ServeHTTP hands r to the current Server, waiting for one that takes it.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var timeout <-chan time.Time
	for {
		s, changed, closed := f.current()
		if closed {
			writeError(w, http.StatusServiceUnavailable, "the agent is stopping")
			return
		}
		if s != nil && s.handle(w, r) {
			return
		}
		if timeout == nil {
			t := time.NewTimer(f.wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			f.log.Warn("local API: no server took a request: the agent's cluster side is still restarting",
				"method", r.Method, "path", r.URL.Path, "waited", f.wait)
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
				"the agent's cluster side is restarting (a join or a move) and did not take the request within %v; try again", f.wait))
			return
		case <-r.Context().Done():
			return // the client went away
		}
	}
}

// frontGrace bounds how long a closing Front waits for its connections'
// requests, once its Server has stopped.
const frontGrace = time.Second

// Serve serves the API on every listener until ctx ends or a listener
// fails. Then it closes: requests are answered that the agent stops, the
// current Server, if any, is stopped (see Server.Stop), and the listeners
// are closed (a unix socket's file is removed). It returns the error of a
// failed listener, or nil.
func (f *Front) Serve(ctx context.Context, lns ...net.Listener) error {
	hs := &http.Server{
		Handler:           f,
		Protocols:         protocols(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() {
			err := hs.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			} else if err != nil {
				err = fmt.Errorf("api: serving on %s: %w", ln.Addr(), err)
			}
			errc <- err
		}()
	}
	var err error
	running := len(lns)
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
	}
	if s := f.close(); s != nil {
		s.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), frontGrace)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		f.log.Warn("local API: requests still running at shutdown; closing their connections", "err", serr)
		hs.Close()
	}
	for range running {
		err = errors.Join(err, <-errc)
	}
	return err
}

// inflight counts the requests a Server runs, so that Stop can wait for
// them, and cancels those still running when it gives up waiting.
type inflight struct {
	mu      sync.Mutex
	stopped bool
	next    uint64
	running map[uint64]context.CancelFunc
	drained chan struct{} // closed once stopped with none running
}

// enter counts a request in, with a context Stop can cancel, unless the
// server has stopped.
func (q *inflight) enter(parent context.Context) (ctx context.Context, leave func(), ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return nil, nil, false
	}
	if q.running == nil {
		q.running = map[uint64]context.CancelFunc{}
	}
	id := q.next
	q.next++
	ctx, cancel := context.WithCancel(parent)
	q.running[id] = cancel
	return ctx, func() {
		cancel()
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.running, id)
		if q.stopped && len(q.running) == 0 {
			close(q.drained)
		}
	}, true
}

// stop takes no request from now on; it returns a channel closed once
// none runs.
func (q *inflight) stop() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.stopped {
		q.stopped, q.drained = true, make(chan struct{})
		if len(q.running) == 0 {
			close(q.drained)
		}
	}
	return q.drained
}

// cancel cancels the requests running; it returns how many there were.
func (q *inflight) cancel() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range q.running {
		c()
	}
	return len(q.running)
}

// handle serves r unless the server has stopped, and reports whether it
// did: a Front hands a request a stopped Server did not take to the next.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) bool {
	ctx, leave, ok := s.inflight.enter(r.Context())
	if !ok {
		return false
	}
	defer leave()
	s.handler.ServeHTTP(w, r.WithContext(ctx))
	return true
}

// Stop stops the server: it takes no new request (its Front hands them to
// the next Server), ends watches, leaves in progress and held semaphore
// slots at once (their streams get a last line saying the agent stops;
// the slots are given back), and gives other requests the request timeout
// and a second to finish. It then cancels those still running and waits
// another second for them. Stop may be called more than once, and from
// several goroutines; each call returns once the server has stopped.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		drained := s.inflight.stop()
		close(s.stopping)
		t := time.NewTimer(s.cfg.Timeout + shutdownGrace)
		defer t.Stop()
		select {
		case <-drained:
			return
		case <-t.C:
		}
		n := s.inflight.cancel()
		s.log.Warn("local API: requests still running as the server stops; cancelling them", "requests", n)
		t.Reset(shutdownGrace)
		select {
		case <-drained:
		case <-t.C:
			s.log.Warn("local API: requests still running after they were cancelled; leaving them to their connections' end")
		}
	})
}
