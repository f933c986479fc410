package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// A join, a push/pull and a user message each open a stream to a peer
// and wait up to memberlist's TCPTimeout (10 s on a LAN) for it: to be
// accepted, and then answered. An address that drops packets, or a
// listener that never answers, holds the caller that long, and a server
// that stops waited for every join under way (its join and reconnect
// loops, the moved-node announcer, discovery's joins). So gossipNet dials
// under a context of its own and keeps the streams it opened: abortDials,
// called once the server stops, closes them all, and fails every dial
// made after, at once.

// errGossipStopped is the error of a dial made while, or after, the
// server stops.
var errGossipStopped = errors.New("cluster: gossip: the server is stopping")

// DialAddressTimeout opens a stream to a, which abortDials closes.
func (t *gossipNet) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(t.dialCtx, "tcp", a.Addr)
	if err != nil {
		if t.dialCtx.Err() != nil {
			return nil, fmt.Errorf("%w: dial %s: %w", errGossipStopped, a.Addr, err)
		}
		return nil, err
	}
	dc := &dialedConn{Conn: c, t: t}
	t.dialMu.Lock()
	defer t.dialMu.Unlock()
	if t.dialCtx.Err() != nil {
		c.Close()
		return nil, fmt.Errorf("%w: dial %s", errGossipStopped, a.Addr)
	}
	t.dialed[dc] = struct{}{}
	return dc, nil
}

// DialTimeout is DialAddressTimeout of an address with no node name.
func (t *gossipNet) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// abortDials closes every stream this node opened and fails the dials
// under way and to come. It is idempotent.
func (t *gossipNet) abortDials() {
	t.stopDials()
	t.dialMu.Lock()
	conns := make([]*dialedConn, 0, len(t.dialed))
	for dc := range t.dialed {
		conns = append(conns, dc)
	}
	t.dialMu.Unlock()
	for _, dc := range conns {
		dc.Close()
	}
}

// dialedConn is a stream this node opened: closing it forgets it.
type dialedConn struct {
	net.Conn
	t    *gossipNet
	once sync.Once
}

func (c *dialedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = c.Conn.Close()
		c.t.dialMu.Lock()
		delete(c.t.dialed, c)
		c.t.dialMu.Unlock()
	})
	return err
}
