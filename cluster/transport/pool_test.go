package transport

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// slowDialer dials the port only once release is closed, as a handshake
// on a host too busy to finish it in time, and counts its dials.
type slowDialer struct {
	p       *rpcPort
	release chan struct{}
	dials   atomic.Int32
}

func (d *slowDialer) dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	d.dials.Add(1)
	select {
	case <-d.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return d.p.m.DialRPC(ctx, addr, timeout)
}

func idleTo(pool *Pool, addr string) int {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return len(pool.idle[addr])
}

// A caller that stops waiting for a connection (the leader's progress
// calls wait one heartbeat timeout) fails at once, but the dial goes on and
// its connection serves the next call: on a host where every handshake
// takes longer than a caller waits, dialling afresh for each call would
// never connect.
func TestPoolKeepsTheConnectionACallerStoppedWaitingFor(t *testing.T) {
	p := startRPCPort(t)
	d := &slowDialer{p: p, release: make(chan struct{})}
	pool := NewPool(d.dial, 20*time.Second)
	defer pool.Close()

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := pool.Call(short, p.addr, &Request{Op: OpStats})
	if !errors.Is(err, context.DeadlineExceeded) || !NotSent(err) {
		t.Fatalf("a call whose connection was not made in time: %v, want a not-sent deadline error", err)
	}
	close(d.release)
	deadline := time.Now().Add(20 * time.Second)
	for idleTo(pool, p.addr) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection the caller stopped waiting for was not pooled within 20s")
		}
		<-time.After(5 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := pool.Call(ctx, p.addr, &Request{Op: OpStats})
	if err != nil || resp.Code != CodeOK {
		t.Fatalf("the next call: %+v, %v", resp, err)
	}
	if n := d.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: the next call did not use the kept connection", n)
	}
	if n := p.handled.Load(); n != 1 {
		t.Errorf("the port handled %d calls, want 1", n)
	}
}

// Close ends the dials callers stopped waiting for, and waits for them.
func TestPoolCloseEndsTheDialsItKept(t *testing.T) {
	p := startRPCPort(t)
	d := &slowDialer{p: p, release: make(chan struct{})} // never released
	pool := NewPool(d.dial, time.Hour)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := pool.Call(short, p.addr, &Request{Op: OpStats}); err == nil {
		t.Fatal("a call with no connection succeeded")
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		pool.Close()
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end the dial under way within 20s")
	}
	if d.dials.Load() != 1 {
		t.Errorf("%d dials, want 1", d.dials.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := pool.Call(ctx, p.addr, &Request{Op: OpStats}); err == nil {
		t.Error("a call on a closed pool succeeded")
	}
}

// countingDialer dials the port's RPC, counting its dials, and lets a
// test wrap the connections it makes.
type countingDialer struct {
	p     *rpcPort
	dials atomic.Int32
	wrap  func(n int32, c net.Conn) net.Conn // nil: none
}

func (d *countingDialer) dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	n := d.dials.Add(1)
	c, err := d.p.m.DialRPC(ctx, addr, timeout)
	if err != nil || d.wrap == nil {
		return c, err
	}
	return d.wrap(n, c), nil
}

func mustCall(t testing.TB, pool *Pool, addr string, op uint8) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := pool.Call(ctx, addr, &Request{Op: op})
	if err != nil || resp.Code != CodeOK {
		t.Fatalf("call of op %d: %+v, %v", op, resp, err)
	}
}

// waitUntil polls cond every few milliseconds for up to 20 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
		<-time.After(2 * time.Millisecond)
	}
}

// pooledConn returns the one connection pooled for addr.
func pooledConn(t *testing.T, pool *Pool, addr string) net.Conn {
	t.Helper()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.idle[addr]) != 1 {
		t.Fatalf("%d connections pooled, want 1", len(pool.idle[addr]))
	}
	return pool.idle[addr][0].c
}

// timedReads counts the reads of a connection that ended at a read
// deadline.
type timedReads struct {
	net.Conn
	timeouts *atomic.Int32
}

func (c timedReads) NetConn() net.Conn { return c.Conn }

func (c timedReads) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.timeouts.Add(1)
	}
	return n, err
}

// Reusing a pooled connection costs no read that waits for nothing (it
// used to be read for a millisecond before each call, to see if the peer
// had closed it): every forwarded write and linearizable read paid it.
func TestPoolReusesAnOpenConnectionWithoutATimedRead(t *testing.T) {
	p := startRPCPort(t)
	var timeouts atomic.Int32
	d := &countingDialer{p: p, wrap: func(_ int32, c net.Conn) net.Conn { return timedReads{c, &timeouts} }}
	pool := NewPool(d.dial, 20*time.Second)
	defer pool.Close()
	for range 20 {
		mustCall(t, pool, p.addr, OpStats)
		mustCall(t, pool, p.addr, OpApply)
	}
	if n := d.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: the pooled connection was not reused", n)
	}
	if n := timeouts.Load(); n != 0 {
		t.Errorf("%d reads of the pooled connection waited out a deadline, want none", n)
	}
}

// BenchmarkPoolCall is a call on a pooled connection over TLS on loopback,
// as every forwarded write and linearizable read makes.
func BenchmarkPoolCall(b *testing.B) {
	p := startRPCPort(b)
	d := &countingDialer{p: p}
	pool := NewPool(d.dial, 20*time.Second)
	defer pool.Close()
	mustCall(b, pool, p.addr, OpStats)
	b.ResetTimer()
	for range b.N {
		mustCall(b, pool, p.addr, OpStats)
	}
}
