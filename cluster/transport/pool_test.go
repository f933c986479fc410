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
