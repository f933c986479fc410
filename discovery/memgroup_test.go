package discovery

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// memGroup is a multicast group in memory, for tests on virtual time
// (testing/synctest): what one of its conns sends reaches every conn, the
// sender's included, after the group's delay for that receiver, unless
// the group drops it. Unlike hub's sockets, a conn's Receive blocks on a
// channel, so a bubble sees its beacons idle and moves the clock on.
type memGroup struct {
	mu    sync.Mutex
	conns []*memConn
	// delay, if set, is each packet's delay to each receiver.
	delay func() time.Duration
	// drop, if set, says whether to lose a packet to one receiver.
	drop func() bool
}

// memConn is one member of a memGroup.
type memConn struct {
	g      *memGroup
	addr   netip.AddrPort
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

var errMemClosed = errors.New("memconn closed")

func (g *memGroup) conn(port uint16) *memConn {
	c := &memConn{g: g, addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port),
		in: make(chan []byte, 256), closed: make(chan struct{})}
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	return c
}

func (c *memConn) Send(b []byte) error {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	for _, to := range c.g.conns {
		if c.g.drop != nil && c.g.drop() {
			continue
		}
		pkt := slices.Clone(b)
		if c.g.delay == nil {
			to.deliver(pkt)
			continue
		}
		time.AfterFunc(c.g.delay(), func() { to.deliver(pkt) })
	}
	return nil
}

// deliver queues pkt, or loses it if the receiver is closed or behind
// (as a full socket buffer would).
func (c *memConn) deliver(pkt []byte) {
	select {
	case <-c.closed:
	case c.in <- pkt:
	default:
	}
}

func (c *memConn) Receive(b []byte) (int, netip.AddrPort, error) {
	select {
	case <-c.closed:
		return 0, netip.AddrPort{}, errMemClosed
	case pkt := <-c.in:
		return copy(b, pkt), c.addr, nil
	}
}

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.g.mu.Lock()
		c.g.conns = slices.DeleteFunc(c.g.conns, func(o *memConn) bool { return o == c })
		c.g.mu.Unlock()
	})
	return nil
}
