package cluster

import (
	"bufio"
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
)

// RPC operations between nodes.
const (
	rpcApply     uint8 = iota + 1 // apply an encoded batch on the leader
	rpcReadIndex                  // the leader's commit index, leadership confirmed
	rpcStats                      // the receiver's raft progress (any node answers)
	rpcLeave                      // the sender leaves: the leader removes it now
)

// Error codes of RPC responses.
const (
	codeOK        uint8 = iota
	codeNotLeader       // the receiver is not the leader: ask again elsewhere
	codeFailed          // the request failed; Err says why
	codeNotReady        // the receiver is starting or stopping: nothing was done, ask again
	codeUnknown         // the write may have been appended: its outcome is in the log
	codeRefused         // rpcLeave: the leader refuses for good (the quorum would be lost)
)

// maxFrame bounds one RPC frame: an encoded batch and some room.
const maxFrame = fsm.MaxEntrySize + 64<<10

// Request is a forwarding RPC.
type Request struct {
	Op   uint8  `msgpack:"o"`
	Data []byte `msgpack:"d,omitempty"`  // rpcApply: an fsm.EncodeBatch batch
	ID   string `msgpack:"id,omitempty"` // rpcLeave: the node leaving
}

// Response answers a Request.
type Response struct {
	Code    uint8        `msgpack:"c"`
	Err     string       `msgpack:"e,omitempty"`
	Results []fsm.Result `msgpack:"r,omitempty"`
	Index   uint64       `msgpack:"i,omitempty"`
	Leader  string       `msgpack:"l,omitempty"` // a hint with codeNotLeader
	Term    uint64       `msgpack:"t,omitempty"` // rpcStats, rpcReadIndex; the leader's with codeNotLeader
	Applied uint64       `msgpack:"a,omitempty"` // rpcStats
}

// RPCNet carries forwarding RPCs to other nodes. The TCP implementation
// dials the peer's cluster port; tests use an in-memory one.
type RPCNet interface {
	Call(ctx context.Context, addr string, req *Request) (*Response, error)
}

// writeFrame writes a length-prefixed msgpack frame.
func writeFrame(w io.Writer, v any) error {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > maxFrame {
		return fmt.Errorf("rpc: frame of %d bytes is larger than %d", len(body), maxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(body)
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
	return msgpack.Unmarshal(body, v)
}

// rpcIdleTimeout closes server connections with no request for this long.
const rpcIdleTimeout = 5 * time.Minute

// serveRPCConn answers requests on one connection until it closes, the
// peer goes idle, or ctx ends.
func serveRPCConn(ctx context.Context, c net.Conn, handle func(context.Context, *Request) *Response) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(rpcIdleTimeout))
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

// tcpRPC is the RPCNet over the cluster port, keeping a few idle
// connections per peer for reuse.
type tcpRPC struct {
	dial    func(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error)
	timeout time.Duration // dial timeout

	mu     sync.Mutex
	idle   map[string][]idleConn
	closed bool
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

func newTCPRPC(dial func(context.Context, string, time.Duration) (net.Conn, error), timeout time.Duration) *tcpRPC {
	return &tcpRPC{dial: dial, timeout: timeout, idle: map[string][]idleConn{}}
}

// Call sends req to addr and waits for the response. A failure after the
// request was written is ambiguous for an apply (it may have been applied);
// such errors are returned as they are, never retried here.
func (t *tcpRPC) Call(ctx context.Context, addr string, req *Request) (*Response, error) {
	c, err := t.get(ctx, addr)
	if err != nil {
		return nil, Unreachable(err)
	}
	resp, err := t.roundTrip(ctx, c, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.put(addr, c)
	return resp, nil
}

func (t *tcpRPC) roundTrip(ctx context.Context, c net.Conn, req *Request) (*Response, error) {
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

// get returns a pooled connection that is still open, or a new one. A
// pooled connection the peer has closed (it restarted, say) would make the
// next request ambiguous, so each is probed first.
func (t *tcpRPC) get(ctx context.Context, addr string) (net.Conn, error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, errors.New("rpc: closed")
		}
		conns := t.idle[addr]
		if len(conns) == 0 {
			t.mu.Unlock()
			return t.dial(ctx, addr, t.timeout)
		}
		ic := conns[len(conns)-1]
		t.idle[addr] = conns[:len(conns)-1]
		t.mu.Unlock()
		if time.Since(ic.since) < maxIdleTime && open(ic.c) {
			return ic.c, nil
		}
		ic.c.Close()
	}
}

// open reports whether the peer has not closed c, without consuming data
// (an idle RPC connection has none to consume).
func open(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (t *tcpRPC) put(addr string, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.idle[addr]) >= maxIdlePerPeer {
		c.Close()
		return
	}
	t.idle[addr] = append(t.idle[addr], idleConn{c: c, since: time.Now()})
}

func (t *tcpRPC) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, conns := range t.idle {
		for _, ic := range conns {
			ic.c.Close()
		}
	}
	t.idle = nil
}
