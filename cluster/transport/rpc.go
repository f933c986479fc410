package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/internal/msgpackcheck"
)

// RPC operations between nodes. Each is answered by the handler its owner
// registers (see Handlers): the raft node the first three, the membership
// server OpLeave.
const (
	OpApply     uint8 = iota + 1 // apply an encoded batch on the leader
	OpReadIndex                  // the leader's commit index, leadership confirmed
	OpStats                      // the receiver's raft progress (any node answers)
	OpLeave                      // the sender leaves: the leader removes it now
)

// Codes of RPC responses.
const (
	CodeOK        uint8 = iota
	CodeNotLeader       // the receiver is not the leader: ask again elsewhere
	CodeFailed          // the request failed; Err says why
	CodeNotReady        // the receiver is starting or stopping: nothing was done, ask again
	CodeUnknown         // the write may have been appended: its outcome is in the log
	CodeRefused         // OpLeave: the leader refuses for good (the quorum would be lost)
)

// maxFrame bounds one RPC frame: an encoded batch and some room.
const maxFrame = fsm.MaxEntrySize + 64<<10

// Request is a forwarding RPC.
type Request struct {
	Op   uint8  `msgpack:"o"`
	Data []byte `msgpack:"d,omitempty"`  // OpApply: an fsm.EncodeBatch batch
	ID   string `msgpack:"id,omitempty"` // OpLeave: the node leaving
}

// Response answers a Request.
type Response struct {
	Code    uint8        `msgpack:"c"`
	Err     string       `msgpack:"e,omitempty"`
	Results []fsm.Result `msgpack:"r,omitempty"`
	Index   uint64       `msgpack:"i,omitempty"`
	Leader  string       `msgpack:"l,omitempty"` // a hint with CodeNotLeader
	Term    uint64       `msgpack:"t,omitempty"` // OpStats, OpReadIndex; the leader's with CodeNotLeader
	Applied uint64       `msgpack:"a,omitempty"` // OpStats
	// Kind says which of the receiver's known errors Err is, with
	// CodeFailed (the raft node's sentinels: see its remote errors), so
	// that the caller's errors.Is sees it; 0 for none. A code the caller
	// does not know is a plain error.
	Kind uint8 `msgpack:"k,omitempty"`
}

// Net carries forwarding RPCs to other nodes. The TCP implementation
// (Pool) dials the peer's cluster port; tests use an in-memory one.
type Net interface {
	Call(ctx context.Context, addr string, req *Request) (*Response, error)
}

// Unreachable marks an error for a write that was not applied: the request
// never left this node (the peer could not be reached), or it is known
// not to have been applied (see the raft node's forwarder). Retrying
// cannot apply it twice. Net implementations wrap their "not sent" errors
// with it.
func Unreachable(err error) error { return &notSentError{err: err} }

// notSentError marks a call that failed before the request left this node.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// NotSent reports whether err is marked Unreachable.
func NotSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// Handler answers one operation's requests.
type Handler func(ctx context.Context, req *Request) *Response

// Handlers routes each request to the handler registered for its Op. Its
// zero value routes nothing; it is safe for concurrent use.
type Handlers struct {
	mu   sync.RWMutex
	byOp map[uint8]Handler
}

// Handle registers h for op, replacing any handler op had.
func (hs *Handlers) Handle(op uint8, h Handler) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.byOp == nil {
		hs.byOp = map[uint8]Handler{}
	}
	hs.byOp[op] = h
}

// Serve answers req with its op's handler, or fails it if op has none.
func (hs *Handlers) Serve(ctx context.Context, req *Request) *Response {
	hs.mu.RLock()
	h := hs.byOp[req.Op]
	hs.mu.RUnlock()
	if h == nil {
		return &Response{Code: CodeFailed, Err: fmt.Sprintf("unknown rpc op %d", req.Op)}
	}
	return h(ctx, req)
}

// writeFrame writes a length-prefixed msgpack frame, in one write: one
// TLS record and one system call, not one for the length and one for the
// body.
func writeFrame(w io.Writer, v any) error {
	var buf bytes.Buffer
	buf.Write(make([]byte, 4)) // the length, filled in below
	if err := msgpack.NewEncoder(&buf).Encode(v); err != nil {
		return err
	}
	frame := buf.Bytes()
	n := len(frame) - 4
	if n > maxFrame {
		return fmt.Errorf("rpc: frame of %d bytes is larger than %d", n, maxFrame)
	}
	binary.BigEndian.PutUint32(frame, uint32(n))
	_, err := w.Write(frame)
	return err
}

// readFrame reads a frame written by writeFrame into v, refusing frames
// larger than maxFrame.
func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("rpc: frame of %d bytes is larger than %d", n, maxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	if err := msgpackcheck.Check(body); err != nil {
		return fmt.Errorf("rpc: frame of %d bytes: %w", n, err)
	}
	if err := msgpack.Unmarshal(body, v); err != nil {
		return fmt.Errorf("rpc: frame of %d bytes: %w", n, err)
	}
	return nil
}

// An RPC server connection is closed when no request starts for
// rpcIdleTimeout, or when a request that started does not arrive whole
// within rpcFrameTimeout (a peer that stalls mid-frame would otherwise
// hold the connection until the idle timeout): a maximal frame, 8 MiB,
// takes 30 s only below 300 KB/s.
const (
	rpcIdleTimeout  = 5 * time.Minute
	rpcFrameTimeout = 30 * time.Second
)

// ServeConn answers requests on one connection until it closes, the
// peer goes idle or stalls mid-request, or ctx ends.
func ServeConn(ctx context.Context, c net.Conn, handle func(context.Context, *Request) *Response) {
	serveConn(ctx, c, handle, rpcIdleTimeout, rpcFrameTimeout)
}

func serveConn(ctx context.Context, c net.Conn, handle func(context.Context, *Request) *Response, idle, whole time.Duration) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		if _, err := r.Peek(1); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(whole))
		var req Request
		if err := readFrame(r, &req); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		resp := handle(ctx, &req)
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := writeFrame(c, resp); err != nil {
			return
		}
	}
}

// Pool is the Net over the cluster port, keeping a few idle
// connections per peer for reuse.
type Pool struct {
	dial    func(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error)
	timeout time.Duration // dial timeout

	// ctx ends at Close; it bounds the dials callers stopped waiting for
	// (see dialKept), which wg counts.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	idle    map[string][]idleConn
	dialing map[string]bool // peers a kept dial is under way to
	closed  bool
}

type idleConn struct {
	c     net.Conn
	since time.Time
}

const (
	maxIdlePerPeer = 64
	// maxIdleTime drops pooled connections well before the server's idle
	// timeout closes them.
	maxIdleTime = time.Minute
)

// NewPool returns a Pool that connects to peers with dial, bounding each
// dial by timeout.
func NewPool(dial func(context.Context, string, time.Duration) (net.Conn, error), timeout time.Duration) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{dial: dial, timeout: timeout, ctx: ctx, cancel: cancel,
		idle: map[string][]idleConn{}, dialing: map[string]bool{}}
}

// Call sends req to addr and waits for the response. A failure after the
// request was written is ambiguous for an apply (it may have been applied);
// such errors are returned as they are, never retried here. A request that
// changes nothing (see readOnly) that fails on a pooled connection before
// its answer is made again, once, on a new connection: the peer may have
// closed the pooled one in the instant after get found it open.
func (t *Pool) Call(ctx context.Context, addr string, req *Request) (*Response, error) {
	c, pooled, err := t.get(ctx, addr)
	if err != nil {
		return nil, Unreachable(err)
	}
	resp, err := t.roundTrip(ctx, c, req)
	if err != nil && pooled && readOnly(req.Op) && ctx.Err() == nil {
		c.Close()
		if c, err = t.dialKept(ctx, addr); err != nil {
			return nil, Unreachable(err)
		}
		resp, err = t.roundTrip(ctx, c, req)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	t.put(addr, c)
	return resp, nil
}

// readOnly reports whether op changes nothing where it is answered, so
// that sending it twice is the same as sending it once.
func readOnly(op uint8) bool { return op == OpReadIndex || op == OpStats }

func (t *Pool) roundTrip(ctx context.Context, c net.Conn, req *Request) (*Response, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Time{})
	}
	if err := writeFrame(c, req); err != nil {
		return nil, err
	}
	var resp Response
	if err := readFrame(c, &resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return &resp, nil
}

// get returns a pooled connection the peer has not closed, and true, or
// a new one, and false. A pooled connection the peer has closed (it
// restarted, say) would make the next request ambiguous, so each is
// checked first: one non-blocking look at its socket (see idleOpen).
func (t *Pool) get(ctx context.Context, addr string) (net.Conn, bool, error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, false, errors.New("rpc: closed")
		}
		conns := t.idle[addr]
		if len(conns) == 0 {
			t.mu.Unlock()
			c, err := t.dialKept(ctx, addr)
			return c, false, err
		}
		ic := conns[len(conns)-1]
		t.idle[addr] = conns[:len(conns)-1]
		t.mu.Unlock()
		if time.Since(ic.since) < maxIdleTime && idleOpen(ic.c) {
			return ic.c, true, nil
		}
		ic.c.Close()
	}
}

// dialResult is the outcome of a dial.
type dialResult struct {
	c   net.Conn
	err error
}

// dialKept dials addr for a caller that waits until ctx ends. A dial its
// caller stops waiting for goes on, bounded by the pool's dial timeout,
// and its connection is pooled for the next call: on a host so busy that
// a TLS handshake takes longer than a caller waits (the leader's progress
// calls wait one heartbeat timeout), dialling afresh for every call and
// giving up each time would never connect. One such dial per peer goes
// on at a time; a caller that finds one under way dials for itself, and
// that dial ends with it.
func (t *Pool) dialKept(ctx context.Context, addr string) (net.Conn, error) {
	t.mu.Lock()
	if t.closed || t.dialing[addr] {
		t.mu.Unlock()
		return t.dial(ctx, addr, t.timeout)
	}
	t.dialing[addr] = true
	t.mu.Unlock()
	done := make(chan dialResult, 1)
	abandoned := false // guarded by t.mu
	t.wg.Go(func() {
		c, err := t.dial(t.ctx, addr, t.timeout)
		t.mu.Lock()
		delete(t.dialing, addr)
		if !abandoned {
			done <- dialResult{c, err}
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		if err == nil {
			t.put(addr, c)
		}
	})
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case r := <-done: // it ended just now: keep what it made
		if r.err == nil {
			t.putLocked(addr, r.c)
		}
	default:
		abandoned = true
	}
	return nil, fmt.Errorf("connecting to %s: %w", addr, ctx.Err())
}

// idleOpen reports whether the peer has not closed the idle connection c.
// An idle RPC connection has nothing to read: a peer that closed it left
// an end of stream, a reset, or its TLS close alert. On a socket, one
// non-blocking peek tells (see peerClosed); a connection that is no socket
// (in tests) is read for a millisecond.
func idleOpen(c net.Conn) bool {
	if closed, ok := peerClosed(c); ok {
		return !closed
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (t *Pool) put(addr string, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.putLocked(addr, c)
}

// putLocked is put with t.mu held.
func (t *Pool) putLocked(addr string, c net.Conn) {
	if t.closed || len(t.idle[addr]) >= maxIdlePerPeer {
		c.Close()
		return
	}
	t.idle[addr] = append(t.idle[addr], idleConn{c: c, since: time.Now()})
}

// Close closes the pooled connections and ends the dials under way;
// later calls fail.
func (t *Pool) Close() {
	t.mu.Lock()
	t.closed = true
	for _, conns := range t.idle {
		for _, ic := range conns {
			ic.c.Close()
		}
	}
	t.idle = nil
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}
