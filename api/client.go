package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrNoAgent means nothing answered at the API's address: no agent runs
// there (or it has not opened its API yet).
var ErrNoAgent = errors.New("no graft agent answers")

// ErrWatchEnded means the agent ended a watch (it is stopping) or the
// connection to it was lost.
var ErrWatchEnded = errors.New("watch ended")

// Client talks to an agent's local API. Its methods are safe to call
// concurrently. Close it when done, to release idle connections.
//
// It speaks HTTP/1.1, or HTTP/2 without TLS with the HTTP2 option.
type Client struct {
	addr string       // as given, for messages
	base string       // URL prefix of every request
	h1   *http.Client // HTTP/1.1
	h2   *http.Client // h2c, nil without the HTTP2 option
	// http1 is set once the agent answered the h2c preface in HTTP/1.
	http1 atomic.Bool
}

// NewClient returns a client of the agent whose API is at addr: the path
// of its unix socket, or "http://host:port" for a loopback TCP address.
// Every connection to a unix socket is checked as DialUnix does: the
// client talks only to an agent of its own user's or root's.
func NewClient(addr string, opts ...ClientOption) (*Client, error) {
	var o clientOpts
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{addr: addr}
	dial := (&net.Dialer{}).DialContext
	switch {
	case addr == "":
		return nil, errors.New("api: empty address")
	case strings.HasPrefix(addr, "http://"):
		u, err := url.Parse(addr)
		if err != nil {
			return nil, fmt.Errorf("api: address %q: %w", addr, err)
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("api: address %q: want http://host:port", addr)
		}
		c.base = "http://" + u.Host
	case strings.Contains(addr, "://"):
		return nil, fmt.Errorf("api: address %q: want a unix socket path or http://host:port (the local API does not speak TLS)", addr)
	default:
		c.base = "http://graft" // the host is ignored: every connection goes to the socket
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := DialUnix(ctx, addr)
			var op *net.OpError
			if err != nil && !errors.As(err, &op) {
				err = &dialRefused{err}
			}
			return conn, err
		}
	}
	c.h1 = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DialContext: dial}}
	if o.http2 {
		c.h2 = newH2CClient(dial)
	}
	return c, nil
}

// dialRefused is DialUnix's error for a socket it will not or cannot use
// (another user's, one it cannot check, a path too long to dial), rather
// than for nothing listening.
type dialRefused struct{ err error }

func (e *dialRefused) Error() string { return e.err.Error() }
func (e *dialRefused) Unwrap() error { return e.err }

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.h1.CloseIdleConnections()
	if c.h2 != nil {
		c.h2.CloseIdleConnections()
	}
	return nil
}

// ReadOption changes how a read is served, or asks what the agent says
// about it.
type ReadOption func(*readReq)

// readReq is a read's query and where to report how it was served.
type readReq struct {
	query url.Values
	info  *ReadInfo
}

// Linearizable makes a read reflect every write committed anywhere before
// it; see the package documentation.
func Linearizable() ReadOption { return func(r *readReq) { r.query.Set("linearizable", "true") } }

// ReadInfo is what the agent reported about how it served a read.
type ReadInfo struct {
	// Contact is how recently the node had heard from the cluster's
	// leader, so how stale a local read may be. Nil if the agent did not
	// say (an agent older than this client).
	Contact *Contact
}

// ReportInfo makes a read fill info with what the agent reports about it,
// whether the read found its key or not, or failed (if the agent
// answered).
func ReportInfo(info *ReadInfo) ReadOption { return func(r *readReq) { r.info = info } }

// contactFrom reads a Contact from a read answer's headers: nil if they
// are missing or malformed.
func contactFrom(h http.Header) *Contact {
	ms, err := strconv.ParseInt(h.Get(HeaderLastContact), 10, 64)
	if err != nil || ms < -1 {
		return nil
	}
	known, err := strconv.ParseBool(h.Get(HeaderKnownLeader))
	if err != nil {
		return nil
	}
	return &Contact{LastContactMS: ms, KnownLeader: known}
}

// keyPath is the path of key's endpoint. The key is escaped whole, '/'
// included, so no key can look like a "." or "//" path segment.
func keyPath(key string) string {
	esc := url.PathEscape(key)
	if esc == "." || esc == ".." {
		esc = strings.ReplaceAll(esc, ".", "%2E")
	}
	return "/v1/kv/" + esc
}

// do sends a request and returns the response of a success; a failure's
// body becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// send sends a request and returns the agent's response, whatever its
// status.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := c.roundTrip(ctx, method, u, body)
	if err != nil {
		var op *net.OpError
		var refused *dialRefused
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &refused):
			return nil, refused.err
		case errors.As(err, &op) && op.Op == "dial":
			return nil, fmt.Errorf("%w at %s: %w", ErrNoAgent, c.addr, op.Err)
		}
		return nil, fmt.Errorf("api: %s: %w", c.addr, err)
	}
	return resp, nil
}

// roundTrip sends one request: over HTTP/1.1, or over h2c with the
// HTTP2 option unless the agent answered h2c in HTTP/1 (then or before).
func (c *Client) roundTrip(ctx context.Context, method, u string, body []byte) (*http.Response, error) {
	do := func(hc *http.Client) (*http.Response, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		return hc.Do(req)
	}
	if c.h2 == nil || c.http1.Load() {
		return do(c.h1)
	}
	resp, err := do(c.h2)
	if errors.Is(err, errHTTP1Only) {
		// No request went out on the connection it refused.
		c.http1.Store(true)
		return do(c.h1)
	}
	return resp, err
}

// readError turns a failure's response into an *Error.
func readError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
		eb.Error = strings.TrimSpace(resp.Status + ": " + strings.TrimSpace(string(raw)))
	}
	return &Error{Status: resp.StatusCode, Message: eb.Error}
}

// call sends a request and decodes a success's JSON body into out.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, method, path, out)
}

// decodeAnswer decodes a success's JSON body into out and closes it.
func decodeAnswer(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: reading the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// read sends a read and decodes a success's JSON body into out, reporting
// what the agent says about the read to the ReportInfo option's ReadInfo.
func (c *Client) read(ctx context.Context, path string, opts []ReadOption, extra url.Values, out any) error {
	r := readReq{query: url.Values{}}
	for _, o := range opts {
		o(&r)
	}
	for k, v := range extra {
		r.query[k] = v
	}
	resp, err := c.send(ctx, http.MethodGet, path, r.query, nil)
	if err != nil {
		return err
	}
	if r.info != nil {
		r.info.Contact = contactFrom(resp.Header)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return readError(resp)
	}
	return decodeAnswer(resp, http.MethodGet, path, out)
}

// Get returns the value of key and whether it exists.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (KV, bool, error) {
	var kv KV
	err := c.read(ctx, keyPath(key), opts, nil, &kv)
	if StatusCode(err) == http.StatusNotFound {
		return KV{}, false, nil
	}
	return kv, err == nil, err
}

// Put sets key to value and returns the revision of the change.
func (c *Client) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if value == nil {
		value = []byte{}
	}
	var w Write
	err := c.call(ctx, http.MethodPut, keyPath(key), nil, value, &w)
	return w.Rev, err
}

// Delete deletes key (a missing key is no error) and returns the revision
// of the change.
func (c *Client) Delete(ctx context.Context, key string) (uint64, error) {
	var w Write
	err := c.call(ctx, http.MethodDelete, keyPath(key), nil, nil, &w)
	return w.Rev, err
}

// List returns the keys under prefix, sorted, and the revision they are
// current at.
func (c *Client) List(ctx context.Context, prefix string, opts ...ReadOption) ([]KV, uint64, error) {
	var l List
	err := c.read(ctx, "/v1/kv", opts, url.Values{"prefix": {prefix}}, &l)
	return l.KVs, l.Rev, err
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return s, err
}

// Watch is a running watch.
type Watch struct {
	ctx     context.Context
	body    io.ReadCloser
	dec     *json.Decoder
	rev     uint64
	contact *Contact
}

// Watch starts following the keys under prefix after revision after (0:
// from now). It returns once the agent has set the watch up, so every
// change made after it returns is reported. The watch runs until ctx ends,
// Close is called, or the agent ends it.
func (c *Client) Watch(ctx context.Context, prefix string, after uint64) (*Watch, error) {
	q := url.Values{"prefix": {prefix}}
	if after > 0 {
		q.Set("rev", strconv.FormatUint(after, 10))
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/watch", q, nil)
	if err != nil {
		return nil, err
	}
	w := &Watch{ctx: ctx, body: resp.Body, dec: json.NewDecoder(resp.Body), contact: contactFrom(resp.Header)}
	first, err := w.next()
	if err == nil && !first.Start {
		err = fmt.Errorf("api: watch stream from %s does not begin with a start object", c.addr)
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	w.rev = first.Rev
	return w, nil
}

// Rev returns the revision the watch started after.
func (w *Watch) Rev() uint64 { return w.rev }

// Contact returns how recently the node had heard from the cluster's
// leader when the watch started; nil if the agent did not say (an agent
// older than this client).
func (w *Watch) Contact() *Contact { return w.contact }

// next reads one object of the stream.
func (w *Watch) next() (WatchEvent, error) {
	var o StreamObject
	err := w.dec.Decode(&o)
	switch {
	case w.ctx.Err() != nil:
		return WatchEvent{}, w.ctx.Err()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return WatchEvent{}, fmt.Errorf("%w: the connection to the agent was lost", ErrWatchEnded)
	case err != nil:
		return WatchEvent{}, fmt.Errorf("%w: %w", ErrWatchEnded, err)
	case o.Error != "":
		return WatchEvent{}, fmt.Errorf("%w: %s", ErrWatchEnded, o.Error)
	}
	return o.WatchEvent, nil
}

// Events yields the watch's events in order. When the watch ends it yields
// one last error, with a zero WatchEvent: the context's error, or one
// matching ErrWatchEnded. Breaking out of the loop leaves the watch
// running; range over Events again to go on.
func (w *Watch) Events() iter.Seq2[WatchEvent, error] {
	return func(yield func(WatchEvent, error) bool) {
		for {
			ev, err := w.next()
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Close stops the watch.
func (w *Watch) Close() error { return w.body.Close() }
