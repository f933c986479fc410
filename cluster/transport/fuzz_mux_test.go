package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/internal/logtest"
)

// fuzzMux serves a plaintext cluster port on 127.0.0.1 whose RPC
// connections are served by handlers that serve nothing (every request
// is answered "unknown op") and whose raft connections are drained and
// closed, as raft does with a stream it cannot decode. With TLS, what the
// mux reads before the handshake completes is crypto/tls's to parse: the
// plaintext port is where the mux's own parsing meets the bytes.
func fuzzMux(f *testing.F) *Mux {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	var none Handlers
	ctx, cancel := context.WithCancel(context.Background())
	m := NewMux(ln, ln.Addr(), nil, nil, slog.New(logtest.New()), func(c net.Conn) {
		go ServeConn(ctx, c, none.Serve)
	}, 2*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := (raftLayer{m}).Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	f.Cleanup(func() {
		cancel()
		m.Close()
		<-done
	})
	return m
}

// settled waits until m holds no handshake and no connection: whatever a
// peer sent, a connection it closed leaves nothing behind.
func settled(t *testing.T, m *Mux) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, pending := handshaking(m, "")
		m.connMu.Lock()
		conns := len(m.conns)
		m.connMu.Unlock()
		if pending == 0 && conns == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the peer hung up the mux holds %d handshakes and %d connections", pending, conns)
		}
		<-time.After(time.Millisecond)
	}
}

// FuzzMuxHandshake connects to a real cluster port, sends whatever the
// input holds and hangs up its sending side. Whatever it sent: the port
// answers the kind byte of raft or RPC with its acknowledgement and
// anything else with nothing; the RPC server answers each frame it can
// read with one well-formed frame; the port closes the connection
// without waiting for its timeouts; and nothing is left behind.
func FuzzMuxHandshake(f *testing.F) {
	m := fuzzMux(f)
	addr := m.ln.Addr().String()
	f.Add([]byte{ConnRPC}, uint8(2))
	f.Add(append([]byte{ConnRPC}, frameOf(f, &Request{Op: OpStats})...), uint8(3))
	f.Add(append(append([]byte{ConnRPC}, frameOf(f, &Request{Op: OpLeave, ID: "n1"})...), frameOf(f, &Request{Op: OpApply, Data: []byte{1}})...), uint8(4))
	f.Add([]byte{ConnRaft, 0, 1, 2, 3}, uint8(5))
	f.Add([]byte("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"), uint8(6)) // a TLS hello to a plaintext port
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(7))
	f.Add([]byte{}, uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, from uint8) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2+from%250)}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		tc := c.(*net.TCPConn)
		defer tc.Close()
		_ = tc.SetLinger(0) // many short connections: no TIME_WAIT
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		// The port may close before it has read everything (a kind it
		// does not know): writing then fails, and reading says how.
		if _, err := tc.Write(data); err != nil && !closedByPort(err) {
			t.Fatalf("writing %d bytes: %v", len(data), err)
		}
		if err := tc.CloseWrite(); err != nil && !closedByPort(err) {
			t.Fatal(err)
		}
		got, err := io.ReadAll(tc)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("the port held the connection open 10s after the peer finished sending (it answered %q)", got)
		case err != nil && !errors.Is(err, io.EOF) && !isReset(err):
			t.Fatalf("reading the answer: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the port took %v to close a connection whose peer had finished", took)
		}
		checkAnswer(t, data, got)
		settled(t, m)
	})
}

// isReset reports a reset: the port closed with input of the peer's
// unread, as it does when it refuses a connection.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// closedByPort reports an error of a write or shutdown on a connection the
// port has already closed.
func closedByPort(err error) bool {
	return isReset(err) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOTCONN)
}

// checkAnswer checks what the port answered to data.
func checkAnswer(t *testing.T, data, got []byte) {
	t.Helper()
	if len(data) == 0 || data[0] != ConnRaft && data[0] != ConnRPC {
		if len(got) != 0 {
			t.Fatalf("a connection of no known kind was answered %q", got)
		}
		return
	}
	if len(got) == 0 || got[0] != connAck {
		t.Fatalf("kind %q was answered %q, want the acknowledgement first", data[0], got)
	}
	if data[0] == ConnRaft {
		if len(got) != 1 {
			t.Fatalf("a raft connection was answered %q past the acknowledgement", got)
		}
		return
	}
	var requests []Request
	for r := bytes.NewReader(data[1:]); ; {
		var req Request
		if readFrame(r, &req) != nil {
			break
		}
		requests = append(requests, req)
	}
	answers := 0
	for r := bytes.NewReader(got[1:]); r.Len() > 0; answers++ {
		var resp Response
		if err := readFrame(r, &resp); err != nil {
			t.Fatalf("answer %d does not read: %v", answers, err)
		}
		if answers >= len(requests) {
			t.Fatalf("more answers than the %d requests", len(requests))
		}
		if want := fmt.Sprintf("unknown rpc op %d", requests[answers].Op); resp.Code != CodeFailed || resp.Err != want {
			t.Fatalf("answer %d: %+v, want %s", answers, resp, want)
		}
	}
	if answers != len(requests) {
		t.Fatalf("%d answers to %d requests", answers, len(requests))
	}
}
