package transport

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// closedByPeer reports whether the end of stream of the peer that closed
// c has reached c's socket (POLLRDHUP), looking without waiting.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	sc, ok := socketOf(c)
	if !ok {
		t.Fatalf("%T has no socket under it", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var revents int16
	if err := raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if _, err := unix.Poll(fds, 0); err == nil {
			revents = fds[0].Revents
		}
	}); err != nil {
		t.Fatal(err)
	}
	return revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
}

// A pooled connection its peer has closed (the peer restarted, or closed
// it idle) is not used: the next call, a write that must never be sent on
// a connection that may not deliver it, goes out once on a new connection
// and succeeds; the caller sees no error.
func TestPoolDoesNotUseAConnectionThePeerClosed(t *testing.T) {
	p := startRPCPortIdle(t, 20*time.Millisecond)
	d := &countingDialer{p: p}
	pool := NewPool(d.dial, 20*time.Second)
	defer pool.Close()

	mustCall(t, pool, p.addr, OpApply)
	waitUntil(t, "server-side close of the idle connection", func() bool { return p.ended.Load() == 1 })
	c := pooledConn(t, pool, p.addr)
	waitUntil(t, "end of stream at the client's socket", func() bool { return closedByPeer(t, c) })

	mustCall(t, pool, p.addr, OpApply)
	if n := p.applied.Load(); n != 2 {
		t.Errorf("the port applied %d writes, want 2", n)
	}
	if n := d.dials.Load(); n != 2 {
		t.Errorf("%d dials, want 2: the closed connection was used", n)
	}
}

// maskedConn is a connection that shows the socket of another, open one
// to a look at its socket: the pool finds it open whatever its peer did,
// as it would if the peer closed it in the instant after the look.
type maskedConn struct {
	net.Conn
	mask net.Conn
}

func (c maskedConn) NetConn() net.Conn { return c.mask }

// openSocket returns one end of an open loopback TCP connection.
func openSocket(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c
}

// A pooled connection that fails at its use (its peer closed it after the
// pool looked) fails a write with an error that does not say "not sent":
// the write may have arrived, so it is not made again here. A request
// that changes nothing (a read index, stats) is made again, once, on a
// new connection, and succeeds.
func TestPoolRetriesOnlyReadOnlyRequestsOnAConnectionThatFailed(t *testing.T) {
	for _, tc := range []struct {
		op        uint8
		wantDials int32
	}{{OpApply, 1}, {OpStats, 2}, {OpReadIndex, 2}} {
		p := startRPCPortIdle(t, 20*time.Millisecond)
		mask := openSocket(t)
		d := &countingDialer{p: p, wrap: func(n int32, c net.Conn) net.Conn {
			if n == 1 {
				return maskedConn{c, mask}
			}
			return c
		}}
		pool := NewPool(d.dial, 20*time.Second)
		mustCall(t, pool, p.addr, OpStats)
		waitUntil(t, "server-side close of the idle connection", func() bool { return p.ended.Load() == 1 })
		c := pooledConn(t, pool, p.addr).(maskedConn).Conn
		waitUntil(t, "end of stream at the client's socket", func() bool { return closedByPeer(t, c) })

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := pool.Call(ctx, p.addr, &Request{Op: tc.op})
		cancel()
		pool.Close()
		switch {
		case tc.op == OpApply && (err == nil || NotSent(err)):
			t.Errorf("a write on a connection that failed: %+v, %v; want an error that does not say not sent", resp, err)
		case tc.op != OpApply && err != nil:
			t.Errorf("op %d on a connection that failed: %v, want it made again and answered", tc.op, err)
		}
		if n := d.dials.Load(); n != tc.wantDials {
			t.Errorf("op %d: %d dials, want %d", tc.op, n, tc.wantDials)
		}
		if n := p.applied.Load(); n != 0 {
			t.Errorf("op %d: the port applied %d writes, want none", tc.op, n)
		}
	}
}
