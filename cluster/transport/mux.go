// Package transport owns the cluster port between nodes: the first-byte
// mux that carries raft's traffic and graft's RPC on one TLS port, its
// admission of handshakes under load, and the RPC's framing, connection
// pool and routing of requests to the handlers their owners register.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/graftcm/graft/cluster/internal/loglimit"
	"github.com/hashicorp/raft"
)

// Connection kinds: the first byte a client writes on a connection to the
// cluster port (after the TLS handshake, when TLS is on).
const (
	ConnRaft byte = 'R'
	ConnRPC  byte = 'P'
	// connAck is the server's answer once it has accepted a connection:
	// until the client reads it, nothing it sends can have been received,
	// so a refusal (a TLS certificate the server rejects, say) is known
	// to be "not sent" rather than an ambiguous failure.
	connAck byte = 'K'
)

// handshakeTimeout bounds how long a new connection may take to complete
// TLS and say what it is, so idle or slow connections cannot pile up.
const handshakeTimeout = 3 * time.Second

// maxPendingHandshakes bounds connections still saying what they are, in
// all and from any one address (see muxadmit.go for who gets a slot when
// they are full).
const (
	maxPendingHandshakes = 256
	maxPendingPerIP      = 16
	maxPendingPerKnownIP = 64 // an address that completed a handshake before (see admission)
)

// errMuxClosed is returned by Accept once the mux is closed.
var errMuxClosed = errors.New("cluster port closed")

// Mux serves the cluster port: it accepts connections, optionally wraps
// them in TLS, reads their kind byte and hands raft connections to raft's
// stream layer and RPC connections to the RPC server.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	log       *slog.Logger
	onRPC     func(net.Conn)
	hsTimeout time.Duration // bounds a connection's handshake

	raftConns chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	adm       *admission // handshakes in progress, and known addresses
	wg        sync.WaitGroup

	// Every connection the mux hands out, so close can close them: raft's
	// transport does not close its pooled or accepted connections, and a
	// peer would otherwise wait on them for ever.
	connMu sync.Mutex
	conns  map[*trackedConn]struct{}

	notes *loglimit.Limiter // rate-limits the log of refused connections
}

// trackedConn is a connection the mux closes when it closes.
type trackedConn struct {
	net.Conn
	m    *Mux
	once sync.Once
}

// NetConn returns the connection c tracks.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.m.connMu.Lock()
		delete(c.m.conns, c)
		c.m.connMu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// track registers c, or closes it if the mux is already closed.
func (m *Mux) track(c net.Conn) (net.Conn, bool) {
	tc := &trackedConn{Conn: c, m: m}
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if m.conns == nil {
		c.Close()
		return nil, false
	}
	m.conns[tc] = struct{}{}
	return tc, true
}

// NewMux serves the cluster port on ln. hsTimeout bounds each
// connection's handshake (0: handshakeTimeout).
func NewMux(ln net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config, log *slog.Logger, onRPC func(net.Conn),
	hsTimeout time.Duration) *Mux {
	if hsTimeout <= 0 {
		hsTimeout = handshakeTimeout
	}
	m := &Mux{
		ln: ln, advertise: advertise, serverTLS: serverTLS, clientTLS: clientTLS, log: log, onRPC: onRPC,
		hsTimeout: hsTimeout,
		raftConns: make(chan net.Conn),
		closed:    make(chan struct{}),
		adm:       newAdmission(),
		conns:     map[*trackedConn]struct{}{},
		notes:     loglimit.New(time.Now),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.log.Error("cluster port: accept failed; no longer accepting", "err", err)
			return
		}
		m.admit(&pendingConn{Conn: c, ip: RemoteIP(c)})
	}
}

// admit gives p a handshake slot and starts its handshake, or refuses it.
func (m *Mux) admit(p *pendingConn) {
	victim, why, ok := m.adm.admit(p)
	switch {
	case !ok && why.err == nil: // closing
		p.Close()
		return
	case !ok:
		refuse(p, why)
		m.note("too many connections handshaking; refusing one from an address not yet known", p.ip, false, nil)
		return
	case victim != nil && why == refusedAddr:
		victim.evict()
		m.note("too many connections handshaking from one address; closing its oldest", p.ip, true, nil)
	case victim != nil:
		victim.evict()
		m.note("too many connections handshaking; closing the oldest from an address not yet known", victim.ip, false, nil)
	}
	m.wg.Add(1)
	go m.handshake(p)
}

// RemoteIP is the connection's remote IP, as text: what the cluster and
// gossip ports count connections and log lines by.
func RemoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// note logs a refused or closed connection, rate-limited as the gossip
// port's lines are (see loglimit.Limiter): each message at most once per
// address (or once in all, unless perAddr) per window, and for a handful
// of addresses per window, however many a flood comes from. The messages
// are constants, so they are few; the error is an attribute.
func (m *Mux) note(msg, ip string, perAddr bool, err error) {
	source := ""
	if perAddr {
		source = ip
	}
	ok, suppressed := m.notes.Allow(noteReason(msg, err), source)
	if !ok {
		return
	}
	args := []any{loglimit.KeyRemote, ip}
	if err != nil {
		args = append(args, "err", err)
	}
	if suppressed > 0 {
		args = append(args, loglimit.KeySuppressed, suppressed)
	}
	m.log.Warn("cluster port: "+msg, args...)
}

// noteReason is the rate limiter's reason for a refusal: the message and
// the error's cause, so that a new kind of failure (a plaintext peer after
// a wrong key) is logged even while another floods. The cause leaves out
// the addresses a net.OpError names, or each connection's port would make
// a reason of its own.
func noteReason(msg string, err error) string {
	if err == nil {
		return msg
	}
	cause := err
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		cause = op.Err
	}
	return loglimit.Truncate(msg+"\x00"+cause.Error(), loglimit.MaxReason+len(msg))
}

// handshake runs the server side of a connection's handshake and routes
// the connection.
func (m *Mux) handshake(p *pendingConn) {
	defer m.wg.Done()
	c, kind, err := m.greet(p)
	// Free the slot before answering: once answered, the connection is the
	// peer's and must not be evicted. If it was evicted meanwhile, the
	// peer gets the refusal instead of the answer.
	ok, why := m.adm.done(p)
	switch {
	case !ok && why != nil:
		refuse(p.Conn, *why) // raw: after whole TLS records, if any
		return
	case !ok || err != nil:
		p.Close()
		return
	}
	if _, err := c.Write([]byte{connAck}); err != nil {
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	c, tracked := m.track(c)
	if !tracked {
		return
	}
	switch kind {
	case ConnRaft:
		select {
		case m.raftConns <- c:
		case <-m.closed:
			c.Close()
		}
	case ConnRPC:
		m.onRPC(c)
	}
}

// greet reads a new connection's TLS handshake and kind, remembering its
// address as known once it has authenticated.
func (m *Mux) greet(p *pendingConn) (net.Conn, byte, error) {
	_ = p.SetDeadline(time.Now().Add(m.hsTimeout))
	// An eviction before that deadline was set would be undone by it:
	// evicted is set before evict moves the deadline, so checking it
	// after setting the deadline misses none.
	if p.evicted.Load() {
		return nil, 0, errEvicted
	}
	var c net.Conn = p
	if m.serverTLS != nil {
		tc := tls.Server(p, m.serverTLS)
		if err := tc.Handshake(); err != nil {
			if !p.evicted.Load() {
				m.note("TLS handshake failed (is the peer using the right cluster key?)", p.ip, true, err)
			}
			return nil, 0, err
		}
		m.adm.authenticated(p.ip)
		c = tc
	}
	var kind [1]byte
	if _, err := c.Read(kind[:]); err != nil {
		return nil, 0, err
	}
	if kind[0] != ConnRaft && kind[0] != ConnRPC {
		err := fmt.Errorf("unknown connection kind %q", kind[0])
		m.note("refusing a connection", p.ip, true, err)
		return nil, 0, err
	}
	if m.serverTLS == nil {
		m.adm.authenticated(p.ip) // all the authentication there is
	}
	return c, kind[0], nil
}

// Dial connects to a peer's cluster port as the given kind. Its errors
// all mean the peer received nothing of ours past the kind byte (it had
// not answered, so it had not handed the connection on), and they say why
// when they can tell: a peer that closed the connection for load says so
// before closing, and only a certificate refused, either way, points at
// the cluster key.
func (m *Mux) Dial(ctx context.Context, addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake ends at the deadline, or at once if ctx ends first.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	deadline, _ := ctx.Deadline()
	c, err := m.hello(raw, addr, kind, deadline)
	if !stop() && err == nil {
		err = ctx.Err() // it may have cut the handshake short: do not trust the connection
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	m.adm.authenticated(RemoteIP(raw))
	tc, ok := m.track(c)
	if !ok {
		return nil, errMuxClosed
	}
	return tc, nil
}

// hello runs the client side of the handshake on raw: TLS, the kind byte
// and the peer's answer, all before deadline.
func (m *Mux) hello(raw net.Conn, addr string, kind byte, deadline time.Time) (net.Conn, error) {
	_ = raw.SetDeadline(deadline)
	c := raw
	if m.clientTLS != nil {
		tc := tls.Client(raw, m.clientTLS)
		if err := tc.Handshake(); err != nil {
			return nil, dialError(addr, "TLS handshake with "+addr, err)
		}
		c = tc
	}
	_, werr := c.Write([]byte{kind})
	// Read the answer even if the write failed: a peer that refused the
	// connection may have reset it after saying why.
	rerr := readAck(c)
	if werr == nil && rerr == nil {
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}
	err := rerr
	if _, refused := refusalOf(rerr); !refused && werr != nil {
		err = werr
	}
	return nil, dialError(addr, addr+" did not accept the connection", err)
}

// refusedByPeer is a refusal read in place of the peer's answer.
type refusedByPeer struct{ r refusal }

func (e refusedByPeer) Error() string { return "refused: " + e.r.err.Error() }

// readAck reads the peer's answer to the kind byte.
func readAck(c net.Conn) error {
	var b [refusalCodeLen]byte
	if _, err := io.ReadFull(c, b[:1]); err != nil {
		return err
	}
	switch b[0] {
	case connAck:
		return nil
	case refusalMark: // without TLS, the refusal itself
		if _, err := io.ReadFull(c, b[1:]); err == nil {
			if r, ok := refusalByCode(b[:]); ok {
				return refusedByPeer{r}
			}
		}
	}
	return fmt.Errorf("unexpected answer %q", b[0])
}

// refusalOf returns the refusal that err carries, if any: with TLS, the
// refusal's code is the header of the record the TLS client could not read.
func refusalOf(err error) (refusal, bool) {
	var rp refusedByPeer
	if errors.As(err, &rp) {
		return rp.r, true
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return refusalByCode(rh.RecordHeader[:])
	}
	return refusal{}, false
}

// dialError names the likely cause of a failed dial.
func dialError(addr, what string, err error) error {
	if r, ok := refusalOf(err); ok {
		return fmt.Errorf("peer %s refused the connection: %w", addr, r.err)
	}
	var (
		verify *tls.CertificateVerificationError
		op     *net.OpError
		header tls.RecordHeaderError
	)
	hint := ""
	switch {
	case errors.As(err, &verify): // its certificate is not from our key
		hint = " (is it using the right cluster key?)"
	case errors.As(err, &op) && op.Op == "remote error": // it refused ours
		hint = " (is it using the right cluster key?)"
	case errors.As(err, &header):
		hint = " (it does not answer in TLS: is it a graft cluster port with the cluster key?)"
	case errors.Is(err, os.ErrDeadlineExceeded):
		hint = " (no answer in time: is it overloaded?)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		hint = " (it closed the connection: is it shutting down or overloaded?)"
	}
	return fmt.Errorf("%s%s: %w", what, hint, err)
}

// Close stops accepting, waits for the handshakes in progress and closes
// every connection it handed out.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
		// Handshakes in progress would hold close up to hsTimeout.
		for _, p := range m.adm.close() {
			p.evict()
		}
		m.wg.Wait()
		m.connMu.Lock()
		conns := m.conns
		m.conns = nil
		m.connMu.Unlock()
		for c := range conns {
			c.Conn.Close()
		}
	})
	return err
}

// StreamLayer is raft's view of the mux: the raft connections it accepts,
// and dials of raft connections to peers.
func (m *Mux) StreamLayer() raft.StreamLayer { return raftLayer{m} }

// DialRPC connects to a peer's cluster port for RPC (see Dial).
func (m *Mux) DialRPC(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	return m.Dial(ctx, addr, ConnRPC, timeout)
}

// raftLayer is raft's view of the mux.
type raftLayer struct{ m *Mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, errMuxClosed
	}
}

// Close is a no-op: the node closes the mux after raft has shut down.
func (l raftLayer) Close() error { return nil }

func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.m.Dial(context.Background(), string(addr), ConnRaft, timeout)
}
