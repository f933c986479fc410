package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/internal/logtest"
)

// Hostile input on the cluster port, over loopback against a real mux
// with mutual TLS and a real RPC server: what a stranger or a peer gone
// bad sends is refused, closed in bounded time, and leaves nothing behind.

// rpcPort is a keyed cluster port whose RPC server answers OpStats and
// OpApply and counts the requests it handles, and the connections it has
// served that ended.
type rpcPort struct {
	m       *Mux
	addr    string
	handled atomic.Int32 // OpStats
	applied atomic.Int32 // OpApply
	ended   atomic.Int32
	logs    *logtest.Recorder
	client  *tls.Config // a member's client TLS for the port's key
}

// testFrameTimeout is the test ports' rpcFrameTimeout.
const testFrameTimeout = time.Second

// startRPCPort serves a keyed cluster port on 127.0.0.1 with the
// production handshake timeout and a frame timeout of testFrameTimeout.
func startRPCPort(t testing.TB) *rpcPort {
	t.Helper()
	return startRPCPortIdle(t, time.Minute)
}

// startRPCPortIdle is startRPCPort whose server closes a connection idle
// for idle.
func startRPCPortIdle(t testing.TB, idle time.Duration) *rpcPort {
	t.Helper()
	tok := newToken(t)
	server, _ := clusterTLS(t, tok, "server")
	_, client := clusterTLS(t, tok, "member")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rpcPort{addr: ln.Addr().String(), logs: logtest.New(), client: client}
	var hs Handlers
	hs.Handle(OpStats, func(context.Context, *Request) *Response {
		p.handled.Add(1)
		return &Response{Code: CodeOK, Index: 1}
	})
	hs.Handle(OpApply, func(context.Context, *Request) *Response {
		p.applied.Add(1)
		return &Response{Code: CodeOK}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p.m = NewMux(ln, ln.Addr(), server, client, slog.New(p.logs), func(c net.Conn) {
		wg.Go(func() {
			serveConn(ctx, c, hs.Serve, idle, testFrameTimeout)
			p.ended.Add(1)
		})
	}, 0)
	t.Cleanup(func() {
		cancel()
		p.m.Close()
		wg.Wait()
	})
	return p
}

// call makes an OpStats call as a member does and checks it is answered.
func (p *rpcPort) call(t *testing.T) {
	t.Helper()
	pool := NewPool(p.m.DialRPC, 10*time.Second)
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := pool.Call(ctx, p.addr, &Request{Op: OpStats})
	if err != nil || resp.Code != CodeOK {
		t.Fatalf("a member's call after the attack: %+v, %v", resp, err)
	}
}

// closedWithin reads c until the server closes it and returns how long
// that took from start; it fails the test if c is still open after limit.
func closedWithin(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", limit)
	}
	return time.Since(start)
}

// A connection that says nothing, one that trickles a TLS hello a byte a
// second, and a member that completes TLS but never says what it is are
// each closed at the handshake deadline (3 s), not later, whatever they
// do meanwhile.
func TestStalledHandshakesAreClosedAtTheDeadline(t *testing.T) {
	p := startRPCPort(t)
	hello := []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}
	stalls := map[string]func(c net.Conn){
		"silent": func(net.Conn) {},
		"trickle": func(c net.Conn) {
			go func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for i := 0; ; i++ {
					if _, err := c.Write(hello[i%len(hello) : i%len(hello)+1]); err != nil {
						return
					}
					<-tick.C
				}
			}()
		},
		"tls, no kind": func(c net.Conn) {
			tc := tls.Client(c, p.client)
			_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
			if err := tc.Handshake(); err != nil {
				t.Errorf("a member's TLS handshake: %v", err)
			}
		},
	}
	var wg sync.WaitGroup
	for name, stall := range stalls {
		wg.Go(func() {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			start := time.Now()
			stall(c)
			// Under load the close may come late; never early.
			took := closedWithin(t, c, start, handshakeTimeout+10*time.Second)
			if took < handshakeTimeout-200*time.Millisecond {
				t.Errorf("%s: closed after %v, before the %v deadline", name, took, handshakeTimeout)
			}
			t.Logf("%s: closed after %v", name, took.Round(time.Millisecond))
		})
	}
	wg.Wait()
	waitSettled(t, p.m)
	if n := p.handled.Load(); n != 0 {
		t.Errorf("%d requests handled from stalled connections", n)
	}
}

// waitSettled waits until m holds no handshake and no connection.
func waitSettled(t *testing.T, m *Mux) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, pending := handshaking(m, "")
		m.connMu.Lock()
		conns := len(m.conns)
		m.connMu.Unlock()
		if pending == 0 && conns == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the port still holds %d handshakes and %d connections", pending, conns)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// heapAndGoroutines is the heap in use after a collection, and the
// goroutines running.
func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, runtime.NumGoroutine()
}

// checkNothingLeft fails unless the heap in use is back within 16 MiB of
// heap, and the goroutines back to goroutines, within 20 s.
func checkNothingLeft(t *testing.T, heap uint64, goroutines int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h, g := heapAndGoroutines()
		if h <= heap+16<<20 && g <= goroutines {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the attack: heap in use %d MiB (was %d), %d goroutines (were %d)", h>>20, heap>>20, g, goroutines)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// A member (a holder of the key: a node gone bad, or a bug) that sends
// frames too large, cut short, stalled mid-way, forged or random gets its
// connection closed, at once or at the frame deadline, with nothing
// handled and nothing left behind; the port then serves members as
// before.
func TestBadFramesFromAMemberCloseItsConnection(t *testing.T) {
	p := startRPCPort(t)
	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	junk := make([]byte, 4096)
	rand.Read(junk)
	bad := map[string][]byte{
		"too large":      {0xff, 0xff, 0xff, 0xff},
		"just too large": binary.BigEndian.AppendUint32(nil, maxFrame+1),
		"stalled":        append(binary.BigEndian.AppendUint32(nil, 1000), make([]byte, 10)...),
		"not msgpack":    frame([]byte{0xc1}),
		"array bomb":     frame([]byte{0x82, 0xa1, 'o', 3, 0xa1, 'x', 0xdd, 0x7f, 0xff, 0xff, 0xff}),
		"trailing bytes": frame([]byte{0x81, 0xa1, 'o', 3, 0}),
		"deep nesting":   frame(append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 100000)...)),
		"random":         junk,
		"header only":    {0, 0, 0, 8},
	}
	heap, goroutines := heapAndGoroutines()
	for round := range 4 {
		var wg sync.WaitGroup
		for name, payload := range bad {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				c, err := p.m.DialRPC(ctx, p.addr, 10*time.Second)
				if err != nil {
					t.Errorf("%s, round %d: dial: %v", name, round, err)
					return
				}
				defer c.Close()
				start := time.Now()
				_ = c.SetWriteDeadline(start.Add(10 * time.Second))
				if _, err := c.Write(payload); err != nil {
					return // closed before it read it all: refused
				}
				if took := closedWithin(t, c, start, testFrameTimeout+10*time.Second); name == "stalled" && took < testFrameTimeout-100*time.Millisecond {
					t.Errorf("a stalled frame was closed after %v, before the %v frame deadline", took, testFrameTimeout)
				}
			})
		}
		wg.Wait()
	}
	if n := p.handled.Load(); n != 0 {
		t.Fatalf("%d bad frames were handled", n)
	}
	waitSettled(t, p.m)
	checkNothingLeft(t, heap, goroutines)
	p.call(t)
}

// A peer gone bad that answers a call with a response whose array
// announces two billion results fails the call; the caller does not
// allocate for them.
func TestForgedResponseFailsTheCallWithoutAllocating(t *testing.T) {
	tok := newToken(t)
	server, client := clusterTLS(t, tok, "bad")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bomb := []byte{0, 0, 0, 8, 0x81, 0xa1, 'r', 0xdd, 0x7f, 0xff, 0xff, 0xff}
	var wg sync.WaitGroup
	bad := NewMux(ln, ln.Addr(), server, client, slog.New(logtest.New()), func(c net.Conn) {
		wg.Go(func() {
			defer c.Close()
			var req Request
			if readFrame(c, &req) == nil {
				_, _ = c.Write(bomb)
			}
		})
	}, 0)
	defer func() { bad.Close(); wg.Wait() }()
	pool := NewPool(bad.DialRPC, 10*time.Second)
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = pool.Call(ctx, ln.Addr().String(), &Request{Op: OpStats})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "rpc: ") {
		t.Fatalf("a call answered with an array bomb: %v, want an rpc error", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("the call allocated %d MiB for a 12-byte answer", n>>20)
	}
}

// recorder keeps what is written through it.
type recorder struct {
	net.Conn
	sent bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.sent.Write(b)
	return r.Conn.Write(b)
}

// What a member sent on a connection, replayed byte for byte on a new
// one, does not get past TLS: the request it carried is not handled
// again.
func TestReplayedConnectionIsRefused(t *testing.T) {
	p := startRPCPort(t)
	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: raw}
	c := tls.Client(rec, p.client)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte{ConnRPC}); err != nil {
		t.Fatal(err)
	}
	if err := readAck(c); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(c, &Request{Op: OpStats}); err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := readFrame(c, &resp); err != nil || resp.Code != CodeOK {
		t.Fatalf("the member's own call: %+v, %v", resp, err)
	}
	c.Close()
	for range 5 {
		again, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := again.Write(rec.sent.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = again.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, again) // the server's TLS flight, then its close
		again.Close()
		if n := p.handled.Load(); n != 1 {
			t.Fatalf("a replay was handled: %d requests handled, want the member's one", n)
		}
	}
	if n := p.handled.Load(); n != 1 {
		t.Fatalf("%d requests handled, want the member's one", n)
	}
	p.logs.Wait(t, 10*time.Second, "TLS handshake failed")
}

// Strangers that send garbage in place of a TLS hello, hundreds of
// connections from one address, are each closed, leave nothing behind,
// and make a line in the log once per address per 10 s, not once per
// connection.
func TestGarbageConnectionsDoNotFloodTheLog(t *testing.T) {
	p := startRPCPort(t)
	heap, goroutines := heapAndGoroutines()
	start := time.Now()
	const conns = 300
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			junk := make([]byte, 64+i)
			rand.Read(junk)
			junk[0] = 'x' // no TLS record type: one kind of failure
			_, _ = c.Write(junk)
			closedWithin(t, c, time.Now(), handshakeTimeout+10*time.Second)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	waitSettled(t, p.m)
	checkNothingLeft(t, heap, goroutines)
	lines := p.logs.Matching(func(l logtest.Line) bool { return strings.Contains(l.Msg, "cluster port") })
	windows := 1 + int(elapsed/(10*time.Second))
	t.Logf("%d lines for %d garbage connections in %v", len(lines), conns, elapsed.Round(time.Millisecond))
	if len(lines) == 0 || len(lines) > windows {
		t.Errorf("%d log lines for %d garbage connections in %v, want 1 to %d", len(lines), conns, elapsed, windows)
	}
	p.call(t)
}
