package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Connection kinds: the first byte a client writes on a connection to the
// cluster port (after the TLS handshake, when TLS is on).
const (
	connRaft byte = 'R'
	connRPC  byte = 'P'
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
// all and from any one address: a single source cannot fill the slots
// that peers' raft connections need.
const (
	maxPendingHandshakes = 256
	maxPendingPerIP      = 16
)

// refusalLogEvery rate-limits the log of refused connections.
const refusalLogEvery = 10 * time.Second

// errMuxClosed is returned by Accept once the mux is closed.
var errMuxClosed = errors.New("cluster port closed")

// mux serves the cluster port: it accepts connections, optionally wraps
// them in TLS, reads their kind byte and hands raft connections to raft's
// stream layer and RPC connections to the RPC server.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	log       *slog.Logger
	onRPC     func(net.Conn)

	raftConns chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	pending   chan struct{} // semaphore of handshakes in progress
	wg        sync.WaitGroup

	// Every connection the mux hands out, so close can close them: raft's
	// transport does not close its pooled or accepted connections, and a
	// peer would otherwise wait on them for ever.
	connMu sync.Mutex
	conns  map[*trackedConn]struct{}

	perIPMu sync.Mutex
	perIP   map[string]int       // handshakes in progress by remote IP
	noted   map[string]time.Time // when each refusal (reason and IP) was last logged
}

// trackedConn is a connection the mux closes when it closes.
type trackedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

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
func (m *mux) track(c net.Conn) (net.Conn, bool) {
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

func newMux(ln net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config, log *slog.Logger, onRPC func(net.Conn)) *mux {
	m := &mux{
		ln: ln, advertise: advertise, serverTLS: serverTLS, clientTLS: clientTLS, log: log, onRPC: onRPC,
		raftConns: make(chan net.Conn),
		closed:    make(chan struct{}),
		pending:   make(chan struct{}, maxPendingHandshakes),
		conns:     map[*trackedConn]struct{}{},
		perIP:     map[string]int{},
		noted:     map[string]time.Time{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) acceptLoop() {
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
		ip := remoteIP(c)
		if !m.admit(ip) {
			m.refused("too many connections handshaking from one address", ip)
			c.Close()
			continue
		}
		select {
		case m.pending <- struct{}{}:
		default:
			m.leave(ip)
			m.refused("too many connections handshaking", ip)
			c.Close()
			continue
		}
		m.wg.Add(1)
		go m.handshake(c, ip)
	}
}

// remoteIP is the connection's remote IP, as text.
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// admit counts a handshake from ip, unless ip has too many.
func (m *mux) admit(ip string) bool {
	m.perIPMu.Lock()
	defer m.perIPMu.Unlock()
	if m.perIP[ip] >= maxPendingPerIP {
		return false
	}
	m.perIP[ip]++
	return true
}

func (m *mux) leave(ip string) {
	m.perIPMu.Lock()
	defer m.perIPMu.Unlock()
	if m.perIP[ip]--; m.perIP[ip] <= 0 {
		delete(m.perIP, ip)
	}
}

// refused logs a refused connection, each reason from each address at
// most once per refusalLogEvery.
func (m *mux) refused(why, ip string) {
	key := why + "\x00" + ip
	m.perIPMu.Lock()
	now := time.Now()
	note := now.Sub(m.noted[key]) >= refusalLogEvery
	if note {
		if len(m.noted) >= 1024 {
			clear(m.noted)
		}
		m.noted[key] = now
	}
	m.perIPMu.Unlock()
	if note {
		m.log.Warn("cluster port: refusing connections: "+why, "remote", ip)
	}
}

// handshake reads the connection's kind and routes it.
func (m *mux) handshake(c net.Conn, ip string) {
	defer m.wg.Done()
	released := false
	release := func() {
		if !released {
			released = true
			<-m.pending
			m.leave(ip)
		}
	}
	defer release()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if m.serverTLS != nil {
		tc := tls.Server(c, m.serverTLS)
		if err := tc.Handshake(); err != nil {
			release()
			m.refused("TLS handshake failed (is the peer using the right cluster key?): "+err.Error(), ip)
			c.Close()
			return
		}
		c = tc
	}
	var kind [1]byte
	if _, err := c.Read(kind[:]); err != nil {
		release()
		c.Close()
		return
	}
	if kind[0] != connRaft && kind[0] != connRPC {
		release()
		m.refused(fmt.Sprintf("unknown connection kind %q", kind[0]), ip)
		c.Close()
		return
	}
	if _, err := c.Write([]byte{connAck}); err != nil {
		release()
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	release()
	c, ok := m.track(c)
	if !ok {
		return
	}
	switch kind[0] {
	case connRaft:
		select {
		case m.raftConns <- c:
		case <-m.closed:
			c.Close()
		}
	case connRPC:
		m.onRPC(c)
	}
}

// dial connects to a peer's cluster port as the given kind.
func (m *mux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if m.clientTLS != nil {
		tc := tls.Client(c, m.clientTLS)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != connAck {
		c.Close()
		if err == nil {
			err = fmt.Errorf("unexpected answer %q", ack[0])
		}
		return nil, fmt.Errorf("%s did not accept the connection (is it using the right cluster key?): %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	tc, ok := m.track(c)
	if !ok {
		return nil, errMuxClosed
	}
	return tc, nil
}

// close stops accepting, waits for the handshakes in progress and closes
// every connection it handed out.
func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
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

// raftLayer is raft's view of the mux.
type raftLayer struct{ m *mux }

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
	return l.m.dial(string(addr), connRaft, timeout)
}
