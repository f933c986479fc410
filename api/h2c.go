package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ClientOption changes how a Client talks to its agent.
type ClientOption func(*clientOpts)

type clientOpts struct {
	http2 bool
}

// HTTP2 makes a Client speak HTTP/2 without TLS (h2c, with prior
// knowledge): its concurrent requests are streams on one connection
// instead of a connection each. That suits a program that keeps many
// requests open at once (watches, held semaphore slots). It is not the
// default because it costs more: measured through the local API, Go's
// HTTP/2 takes 1.5 to 1.9 times the CPU of HTTP/1.1 per request and more
// time (BenchmarkAPIRoundTrip in api/server). An agent that answers the
// HTTP/2 preface in HTTP/1 (one older than h2c support) is spoken to in
// HTTP/1.1 from then on: each new connection sends the preface and waits
// for the agent's first bytes before any request goes out on it.
func HTTP2() ClientOption { return func(o *clientOpts) { o.http2 = true } }

// newH2CClient returns an HTTP client that speaks h2c over connections
// made by dial.
func newH2CClient(dial func(context.Context, string, string) (net.Conn, error)) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	tr.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		return dialH2C(ctx, dial, network, address)
	}
	return &http.Client{Transport: tr}
}

// errHTTP1Only means the agent answered the h2c preface in HTTP/1: it
// does not speak h2c, and read no request on that connection.
var errHTTP1Only = errors.New("the agent speaks HTTP/1 only")

// h2Preface is what an HTTP/2 client sends first (RFC 9113, section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// http1Status begins every HTTP/1 answer.
var http1Status = []byte("HTTP/1.")

// dialH2C dials with dial and sends the HTTP/2 preface, then reads the
// agent's first bytes: an h2c agent's are its SETTINGS frame, which the
// connection returned hands on to the HTTP/2 transport (whose own preface
// it leaves out); an HTTP/1 status line means the agent speaks HTTP/1
// only (errHTTP1Only), so no request is ever sent to it in HTTP/2.
func dialH2C(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), network, address string) (net.Conn, error) {
	conn, err := dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	head := make([]byte, len(http1Status))
	_, err = io.WriteString(conn, h2Preface)
	if err == nil {
		_, err = io.ReadFull(conn, head)
	}
	if !stop() {
		err = errors.Join(err, ctx.Err()) // the deadline may have cut it short
	}
	switch {
	case err != nil:
		conn.Close()
		return nil, fmt.Errorf("starting HTTP/2 with the agent: %w", err)
	case bytes.Equal(head, http1Status):
		conn.Close()
		return nil, errHTTP1Only
	}
	conn.SetDeadline(time.Time{})
	return &prefacedConn{Conn: conn, head: head}, nil
}

// prefacedConn is an h2c connection whose preface has been exchanged:
// reads return the agent's bytes read to check it first, and the
// transport's preface, the start of its first write, is not sent again.
// Reads are made by one goroutine at a time, writes too (the HTTP/2
// transport's reader and its writer, under its write lock).
type prefacedConn struct {
	net.Conn
	head []byte
	sent bool // the first write was made
}

func (c *prefacedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *prefacedConn) Write(p []byte) (int, error) {
	if c.sent {
		return c.Conn.Write(p)
	}
	c.sent = true
	if !bytes.HasPrefix(p, []byte(h2Preface)) {
		return 0, errors.New("api: the HTTP/2 transport's first write is not its preface")
	}
	n, err := c.Conn.Write(p[len(h2Preface):])
	return n + len(h2Preface), err
}
