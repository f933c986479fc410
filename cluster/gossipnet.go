package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftcm/graft/cluster/internal/loglimit"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/hashicorp/memberlist"
)

// The gossip port's TCP streams are bounded before memberlist sees them.
//
// memberlist (v0.5.4) gives every accepted connection a goroutine, with no
// cap on how many, and of an encrypted stream it reads a one-byte type
// and a four-byte length, then buffers that many bytes (up to 20 MiB, in a
// bytes.Buffer that grows by doubling) before it can tell that the sender
// has no key: 30 such streams took an agent from 166 MB to 1.9 GB. So
// gossipNet, wrapping memberlist's NetTransport, admits at most
// maxGossipStreams streams at once and maxGossipStreamsPerIP from one
// address (closing further ones at once), gives a stream
// gossipHeaderTimeout to send its type and length, and refuses an
// encrypted stream before memberlist reads any of it if it claims more
// than gossipStreamMax, or more than is left of gossipClaimsTotal, which
// the streams open at once claim from together; memberlist reads no more
// than a stream claimed. The largest thing a peer sends on a stream is a
// push-pull of every member's state, about 200 bytes a member (600 with
// the most metadata memberlist allows), so one stream takes the state of
// a cluster of over 13,000 members, whatever the receiver knows of it (a
// node joining a large cluster knows nobody).
//
// What strangers can make memberlist hold is thus about twice
// gossipClaimsTotal (memberlist's buffer grows by doubling): 32 MiB. The
// regression tests hold the heap to +64 MiB under attack.
//
// What this cannot prevent is a full house: streams that each send a
// valid header and then trickle hold their slot for memberlist's
// TCPTimeout, and while every slot is taken other peers' streams (joins,
// push-pull) are refused and retried. Spread over
// maxGossipStreams/maxGossipStreamsPerIP addresses at least, that delays
// gossip over TCP; it does not stop UDP gossip, failure detection or raft.
// Nor does it guard a cluster without a key (Insecure, tests only), where
// memberlist decodes what anyone sends and sizes allocations by counts in
// it: the budget bounds the bytes read, not what they claim.
const (
	maxGossipStreams      = 64
	maxGossipStreamsPerIP = 8
	gossipHeaderTimeout   = 2 * time.Second

	gossipStreamMax   = 8 << 20   // the most one encrypted stream may claim
	gossipClaimsTotal = 16 << 20  // what the streams open at once may claim together
	gossipPlainBudget = 256 << 10 // what an unencrypted stream (no key: tests) may carry
)

// mlEncryptMsg is memberlist's message type of an encrypted stream (its
// encryptMsg, which it does not export). The type is followed by the
// length of the rest, big-endian in four bytes.
const mlEncryptMsg = 10

// errGossipStreamBudget is what memberlist reads from a stream that sends
// more than its budget allows.
var errGossipStreamBudget = errors.New("gossip stream is larger than its byte budget")

// gossipNetConfig configures a gossipNet.
type gossipNetConfig struct {
	Host string // bind address; empty or unspecified for all
	Port int    // 0: a free one
	// Logger receives memberlist's NetTransport lines; Log and Notes
	// gossipNet's own, rate-limited.
	Logger *log.Logger
	Log    *slog.Logger
	Notes  *loglimit.Limiter
	// HeaderTimeout bounds the wait for a stream's header (0:
	// gossipHeaderTimeout).
	HeaderTimeout time.Duration
}

// gossipNet is memberlist's NetTransport with its incoming streams
// bounded. It implements memberlist.NodeAwareTransport.
type gossipNet struct {
	*memberlist.NetTransport
	cfg     gossipNetConfig
	streams chan net.Conn // vetted streams, to memberlist

	closing  atomic.Bool
	ctx      context.Context // cancelled once the listeners are closed
	cancel   context.CancelFunc
	wg       sync.WaitGroup // acceptLoop and the vet goroutines
	shutOnce sync.Once

	// The streams this node opens (see gossipdial.go).
	dialCtx   context.Context
	stopDials context.CancelFunc
	dialMu    sync.Mutex
	dialed    map[*dialedConn]struct{}

	mu      sync.Mutex
	open    int            // admitted streams not yet closed
	perIP   map[string]int // the same by remote IP
	claimed int64          // bytes the open streams claimed (see gossipClaimsTotal)
}

var _ memberlist.NodeAwareTransport = (*gossipNet)(nil)

func newGossipNet(cfg gossipNetConfig) (*gossipNet, error) {
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = gossipHeaderTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Notes == nil {
		cfg.Notes = loglimit.New(time.Now)
	}
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{cfg.Host}, BindPort: cfg.Port, Logger: cfg.Logger}
	// With port 0, the TCP listener picks a port the UDP one may find
	// taken; memberlist retries its own transport the same way, and its
	// error is text only.
	tries := 1
	if cfg.Port == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip transport: %w", classifyGossipError(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &gossipNet{NetTransport: nt, cfg: cfg, streams: make(chan net.Conn), ctx: ctx, cancel: cancel,
		perIP: map[string]int{}, dialed: map[*dialedConn]struct{}{}}
	t.dialCtx, t.stopDials = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// StreamCh returns the streams that passed the checks.
func (t *gossipNet) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes the listeners, every stream not yet handed to
// memberlist and every stream this node opened (see abortDials), and
// waits for gossipNet's goroutines. Streams of peers memberlist holds end
// at its TCPTimeout, as with its own transport. It is idempotent.
func (t *gossipNet) Shutdown() error {
	var err error
	t.shutOnce.Do(func() {
		// NetTransport's accept loop may be blocked handing over a
		// connection: acceptLoop keeps taking (and now closing) them
		// until the listeners are shut.
		t.closing.Store(true)
		t.abortDials()
		err = t.NetTransport.Shutdown()
		t.cancel()
		t.wg.Wait()
	})
	return err
}

func (t *gossipNet) acceptLoop() {
	defer t.wg.Done()
	inner := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-inner:
			t.admit(c)
		case <-t.ctx.Done():
			return
		}
	}
}

// admit takes a slot for c, or closes it.
func (t *gossipNet) admit(c net.Conn) {
	if t.closing.Load() {
		c.Close()
		return
	}
	ip := transport.RemoteIP(c)
	if why := t.take(ip); why != "" {
		c.Close()
		t.refused(why, ip)
		return
	}
	t.wg.Add(1)
	go t.vet(&gossipStream{Conn: c, t: t, ip: ip})
}

// take counts a stream from ip, or says why it cannot.
func (t *gossipNet) take(ip string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.open >= maxGossipStreams:
		return "too many streams"
	case t.perIP[ip] >= maxGossipStreamsPerIP:
		return "too many streams from one address"
	}
	t.open++
	t.perIP[ip]++
	return ""
}

// claim takes n bytes of gossipClaimsTotal for a stream, if they are left.
func (t *gossipNet) claim(n int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.claimed+n > gossipClaimsTotal {
		return false
	}
	t.claimed += n
	return true
}

// release frees a stream's slot and the bytes it claimed.
func (t *gossipNet) release(ip string, claimed int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.claimed -= claimed
	t.open--
	if t.perIP[ip]--; t.perIP[ip] <= 0 {
		delete(t.perIP, ip)
	}
}

// vet reads s's header and hands s to memberlist if it is within budget.
func (t *gossipNet) vet(s *gossipStream) {
	defer t.wg.Done()
	stop := context.AfterFunc(t.ctx, func() { s.Close() })
	err := s.readHeader(t.cfg.HeaderTimeout)
	if !stop() { // shutting down: s is closed
		return
	}
	if err != nil {
		s.Close()
		var ne net.Error
		var big *claimError
		switch {
		case errors.As(err, &big):
			t.refused(big.why, s.ip, logKeyClaimed, big.claimed, logKeyBudget, big.budget)
		case errors.As(err, &ne) && ne.Timeout():
			t.refused(fmt.Sprintf("no message header within %v", t.cfg.HeaderTimeout), s.ip)
		}
		// Anything else is a peer that hung up (a port scan, a reset):
		// memberlist does not log those either.
		return
	}
	select {
	case t.streams <- s:
	case <-t.ctx.Done():
		s.Close()
	}
}

// refused logs a refused stream, rate-limited.
func (t *gossipNet) refused(why, ip string, args ...any) {
	ok, suppressed := t.cfg.Notes.Allow("refusing stream: "+why, ip)
	if !ok {
		return
	}
	args = append(args, loglimit.KeyRemote, ip)
	if suppressed > 0 {
		args = append(args, loglimit.KeySuppressed, suppressed)
	}
	t.cfg.Log.Warn("gossip port: refusing stream: "+why, args...)
}

// claimError is a header that claims more than may be claimed.
type claimError struct {
	why             string
	claimed, budget int64
}

func (e *claimError) Error() string {
	return fmt.Sprintf("%s: it claims %d bytes, %d may be", e.why, e.claimed, e.budget)
}

// Attribute keys of refused streams' log lines.
const (
	logKeyClaimed = "claimed"
	logKeyBudget  = "budget"
)

// gossipStream is an admitted stream. It replays the header it read for
// memberlist, lets it read at most the budget, and frees its slot when
// closed. Read is called by one goroutine at a time (memberlist's
// handler); Close by any.
type gossipStream struct {
	net.Conn
	t      *gossipNet
	ip     string
	peeked []byte // header bytes read and not yet replayed
	left   int64  // bytes memberlist may still read past peeked
	claim  int64  // bytes taken from gossipClaimsTotal
	once   sync.Once
}

// readHeader reads the message type and, of an encrypted message, its
// length, within timeout, and claims what the stream may carry: an
// encrypted message's length (if it may), otherwise gossipPlainBudget.
func (s *gossipStream) readHeader(timeout time.Duration) error {
	if err := s.Conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s.Conn, hdr[:1]); err != nil {
		return err
	}
	s.peeked, s.left = hdr[:1], gossipPlainBudget-1
	claimed := int64(gossipPlainBudget)
	if hdr[0] == mlEncryptMsg {
		if _, err := io.ReadFull(s.Conn, hdr[1:]); err != nil {
			return err
		}
		claimed = int64(binary.BigEndian.Uint32(hdr[1:]))
		if claimed > gossipStreamMax {
			return &claimError{why: "stream claims more than a stream may", claimed: claimed, budget: gossipStreamMax}
		}
		s.peeked, s.left = hdr, claimed
	}
	if !s.t.claim(claimed) {
		return &claimError{why: "the streams open claim too much already", claimed: claimed, budget: gossipClaimsTotal}
	}
	s.claim = claimed
	// memberlist sets its own deadline for the exchange.
	return s.Conn.SetReadDeadline(time.Time{})
}

func (s *gossipStream) Read(p []byte) (int, error) {
	if len(s.peeked) > 0 {
		n := copy(p, s.peeked)
		s.peeked = s.peeked[n:]
		return n, nil
	}
	if s.left <= 0 {
		return 0, errGossipStreamBudget
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.Conn.Read(p)
	s.left -= int64(n)
	return n, err
}

func (s *gossipStream) Close() error {
	err := net.ErrClosed
	s.once.Do(func() {
		err = s.Conn.Close()
		s.t.release(s.ip, s.claim)
	})
	return err
}

// createMemberlist starts memberlist on c. memberlist leaves a transport
// it was given open when it fails to start, so one of ours is shut here.
func createMemberlist(c *memberlist.Config) (*memberlist.Memberlist, error) {
	ml, err := memberlist.Create(c)
	if err != nil {
		if t, ok := c.Transport.(*gossipNet); ok {
			t.Shutdown()
		}
		err = classifyGossipError(err)
	}
	return ml, err
}
