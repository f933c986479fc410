package transport

import (
	"container/list"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Who gets a handshake slot on the cluster port.
//
// Before a connection has finished its handshake nothing tells a peer
// from an attacker but its address and its speed: a peer's mutual TLS
// handshake takes milliseconds, a connection held open to take a slot
// sits in it until handshakeTimeout. So when the slots are full the mux
// closes the oldest handshake rather than refusing the newcomer, and an
// idle flood cannot lock anyone out:
//
//   - An address at its limit loses its own oldest handshake that has not
//     sent a byte (a peer sends its TLS hello at once; bytes waiting in
//     the socket count, so a hello not read yet counts too), else its
//     oldest. The limit is maxPendingPerIP, or maxPendingPerKnownIP for a
//     known address (below). A process on a peer's host holding idle
//     connections from the peer's address delays nobody; to crowd out the
//     peer's dial it would have to open maxPendingPerKnownIP connections
//     in the moment between the peer's connect and its hello.
//   - When all maxPendingHandshakes are taken, the oldest handshake from an
//     address not yet known is closed. Known addresses are those that
//     completed a handshake with this node recently (in either direction),
//     at most maxKnownAddrs of them; only a holder of the cluster key (or,
//     without TLS, any peer) gets into that set. A known address's
//     handshake is never closed to make room for an unknown one, so a
//     flood from many unknown addresses cannot starve the members, however
//     fast it churns. A newcomer is refused only when every slot holds a
//     handshake it may not displace (an unknown newcomer, all slots known).
//
// The caps stay hard: never more than maxPendingHandshakes in all, nor
// maxPendingPerKnownIP from one address, each for at most the handshake
// timeout.

// limitFor is how many handshakes one address may have pending.
func limitFor(known bool) int {
	if known {
		return maxPendingPerKnownIP
	}
	return maxPendingPerIP
}

// maxKnownAddrs bounds the addresses remembered as having completed a
// handshake; the least recently seen is forgotten first.
const maxKnownAddrs = 1024

// A refusal is the short plain-text line the mux writes on a connection it
// closes for load, so that the dialer can tell why (mux.dial maps it to an
// error) instead of guessing at a bad cluster key. Its first five bytes are
// the whole code: a TLS client that reads them in place of a record fails
// with a tls.RecordHeaderError holding exactly those five bytes. They
// cannot pass for a TLS record ('!' is no record type, and the bytes after
// it are no TLS version) nor for connAck.
type refusal struct {
	code string // five bytes, starting with refusalMark
	err  error  // what the dialer is told
}

const (
	refusalMark    = '!'
	refusalCodeLen = 5 // a TLS record header's length
)

// Why a connection was closed for load, as the dialer reports it.
var (
	errBusyAddr = errors.New("too many connections handshaking from this address")
	errBusy     = errors.New("too many connections handshaking")
)

var (
	refusedAddr = refusal{code: "!ADDR", err: errBusyAddr}
	refusedBusy = refusal{code: "!BUSY", err: errBusy}
)

// wire is what the mux writes: the code, then the reason for a human
// reading the port with a plain TCP client.
func (r refusal) wire() []byte {
	return []byte(r.code + " graft cluster port: " + r.err.Error() + "\n")
}

// refusalByCode returns the refusal whose code starts b, if any.
func refusalByCode(b []byte) (refusal, bool) {
	for _, r := range []refusal{refusedAddr, refusedBusy} {
		if string(b) == r.code {
			return r, true
		}
	}
	return refusal{}, false
}

// refusalWriteTimeout bounds the write of a refusal. The line goes to a
// socket the mux has written no more than a TLS flight to, so it fits in
// the send buffer and the write does not wait; the bound is a guard.
const refusalWriteTimeout = 100 * time.Millisecond

// refuse tells the dialer why and closes the connection. Only the
// connection's one writer may call it: the handshake goroutine, or the
// accept loop for a connection that got no goroutine.
func refuse(c net.Conn, r refusal) {
	_ = c.SetWriteDeadline(time.Now().Add(refusalWriteTimeout))
	_, _ = c.Write(r.wire())
	c.Close()
}

// pendingConn is a connection still handshaking.
type pendingConn struct {
	net.Conn
	ip    string
	known bool   // ip was known when the connection arrived
	seq   uint64 // arrival order

	// Set, under admission.mu, when the connection loses its slot: it is
	// to be refused with why, or just closed if why is nil.
	evicted atomic.Bool
	why     *refusal
	// heard is set once the peer has sent anything: a real peer sends its
	// TLS hello at once, an idle connection nothing, so the silent ones
	// go first when slots run out.
	heard atomic.Bool
}

// errEvicted ends the handshake of a connection that lost its slot.
var errEvicted = errors.New("handshake evicted")

// spoke reports whether the peer has sent anything, read or not yet: the
// accept loop can admit connections faster than their goroutines read a
// first byte.
func (p *pendingConn) spoke() bool {
	if p.heard.Load() {
		return true
	}
	if hasInput(p.Conn) {
		p.heard.Store(true)
		return true
	}
	return false
}

func (p *pendingConn) Read(b []byte) (int, error) {
	n, err := p.Conn.Read(b)
	if n > 0 && !p.heard.Load() {
		p.heard.Store(true)
	}
	return n, err
}

// evict ends p's handshake, whose slot admission has already taken: its
// goroutine wakes from whatever read or write it waits on, finds the slot
// gone and refuses the connection. Telling the dialer is left to that
// goroutine, the connection's only writer, so that the refusal lands
// after whole TLS records (a TLS client then reads its code as a record
// header; only a write cut short because the peer stopped reading could
// leave half a record, and only a hostile peer stops reading mid-flight)
// and the accept loop never waits on another goroutine's write.
// The goroutine outlives its slot only for that one line.
func (p *pendingConn) evict() { _ = p.Conn.SetDeadline(time.Now()) }

// admission holds the handshakes in progress and the known addresses.
type admission struct {
	mu      sync.Mutex
	seq     uint64
	pending map[*pendingConn]struct{}
	perIP   map[string]int // pending handshakes by remote IP
	closed  bool

	known      list.List                // of string, most recently seen first
	knownIndex map[string]*list.Element // into known
}

func newAdmission() *admission {
	return &admission{
		pending:    map[*pendingConn]struct{}{},
		perIP:      map[string]int{},
		knownIndex: map[string]*list.Element{},
	}
}

// admit gives p a slot. To make room it may evict another handshake,
// which it returns with the refusal to tell it; the caller refuses the
// victim outside the lock. If p itself gets no slot, admit returns
// ok=false and the refusal for p.
func (a *admission) admit(p *pendingConn) (victim *pendingConn, why refusal, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, refusal{}, false
	}
	_, p.known = a.knownIndex[p.ip]
	switch {
	case a.perIP[p.ip] >= limitFor(p.known):
		why = refusedAddr
		// At most maxPendingPerKnownIP to look at, a syscall each at most.
		if victim = a.oldest(func(q *pendingConn) bool { return q.ip == p.ip && !q.spoke() }); victim == nil {
			victim = a.oldest(func(q *pendingConn) bool { return q.ip == p.ip })
		}
	case len(a.pending) >= maxPendingHandshakes:
		why = refusedBusy
		if victim = a.oldest(func(q *pendingConn) bool { return !q.known && !q.heard.Load() }); victim == nil {
			victim = a.oldest(func(q *pendingConn) bool { return !q.known })
		}
		if victim == nil && p.known {
			victim = a.oldest(func(*pendingConn) bool { return true })
		}
		if victim == nil {
			return nil, refusedBusy, false
		}
	}
	if victim != nil {
		a.removeLocked(victim)
		victim.evicted.Store(true)
		victim.why = &why
	}
	a.seq++
	p.seq = a.seq
	a.pending[p] = struct{}{}
	a.perIP[p.ip]++
	return victim, why, true
}

// oldest is the earliest pending handshake that matches, or nil. A scan:
// there are at most maxPendingHandshakes, and only a full mux looks.
func (a *admission) oldest(match func(*pendingConn) bool) *pendingConn {
	var old *pendingConn
	for q := range a.pending {
		if match(q) && (old == nil || q.seq < old.seq) {
			old = q
		}
	}
	return old
}

func (a *admission) removeLocked(p *pendingConn) {
	delete(a.pending, p)
	if a.perIP[p.ip]--; a.perIP[p.ip] <= 0 {
		delete(a.perIP, p.ip)
	}
}

// done frees p's slot. If p no longer had one, done returns false and
// what to tell the peer, if anything.
func (a *admission) done(p *pendingConn) (ok bool, why *refusal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[p]; !ok {
		return false, p.why
	}
	a.removeLocked(p)
	return true, nil
}

// authenticated remembers that ip completed a handshake.
func (a *admission) authenticated(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.knownIndex[ip]; ok {
		a.known.MoveToFront(e)
		return
	}
	a.knownIndex[ip] = a.known.PushFront(ip)
	if a.known.Len() > maxKnownAddrs {
		delete(a.knownIndex, a.known.Remove(a.known.Back()).(string))
	}
}

// close admits no more and evicts the handshakes in progress, to be
// closed without a word.
func (a *admission) close() []*pendingConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	var all []*pendingConn
	for p := range a.pending {
		all = append(all, p)
		a.removeLocked(p)
		p.evicted.Store(true)
	}
	return all
}
