package clustertest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// gossipNet is an in-memory network for memberlist. Unlike memberlist's own
// mock it never blocks a sender on a receiver that is gone (packets to a
// dead or cut-off node are dropped, as UDP would drop them; streams are
// refused), it is safe for concurrent use, and it partitions.
type gossipNet struct {
	mu     sync.Mutex
	byAddr map[string]*gossipTransport
	addrOf map[string]string  // node name -> its address, stable across restarts
	group  map[string]int     // node name -> partition group
	links  map[[2]string]bool // pairs of node names cut off from each other
	port   int
}

func newGossipNet() *gossipNet {
	return &gossipNet{byAddr: map[string]*gossipTransport{}, addrOf: map[string]string{}, group: map[string]int{},
		links: map[[2]string]bool{}}
}

// transport returns a new transport for the named node, at the address the
// name always has.
func (n *gossipNet) transport(name string) *gossipTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	addr, ok := n.addrOf[name]
	if !ok {
		n.port++
		addr = fmt.Sprintf("127.0.0.1:%d", 20000+n.port)
		n.addrOf[name] = addr
	}
	t := &gossipTransport{net: n, name: name, addr: addr,
		packets: make(chan *memberlist.Packet, 1024), streams: make(chan net.Conn, 64), down: make(chan struct{})}
	n.byAddr[addr] = t
	return t
}

// peer returns the live transport at addr, if from may reach it: from is
// up (memberlist's goroutines may still send after its Shutdown, as a
// closed socket cannot) and in the same partition group.
func (n *gossipNet) peer(from *gossipTransport, addr string) (*gossipTransport, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.byAddr[addr]
	if !ok || t.isDown() || from.isDown() || n.group[t.name] != n.group[from.name] ||
		n.links[[2]string{t.name, from.name}] || n.links[[2]string{from.name, t.name}] {
		return nil, false
	}
	return t, true
}

type gossipTransport struct {
	net      *gossipNet
	name     string
	addr     string
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	down     chan struct{}
	downOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

func (t *gossipTransport) isDown() bool {
	select {
	case <-t.down:
		return true
	default:
		return false
	}
}

func (t *gossipTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, p, err := net.SplitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	port, err := strconv.Atoi(p)
	return net.ParseIP(host), port, err
}

func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress delivers a packet, or drops it like UDP would.
func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dest, ok := t.net.peer(t, a.Addr)
	if !ok {
		return now, nil
	}
	buf := append([]byte(nil), b...)
	select {
	case dest.packets <- &memberlist.Packet{Buf: buf, From: mockAddr(t.addr), Timestamp: now}:
	default: // a full queue drops, as a full socket buffer does
	}
	return now, nil
}

func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout connects a stream, or fails as a refused or timed-out
// TCP connection would.
func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dest, ok := t.net.peer(t, a.Addr)
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", a.Addr)
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dest.streams <- remote:
		return local, nil
	case <-dest.down:
	case <-timer.C:
	}
	local.Close()
	remote.Close()
	return nil, errors.New("dial " + a.Addr + ": timed out")
}

func (t *gossipTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *gossipTransport) IngestPacket(net.Conn, net.Addr, time.Time, bool) error {
	return errors.New("clustertest: packets are not ingested")
}

func (t *gossipTransport) IngestStream(net.Conn) error {
	return errors.New("clustertest: streams are not ingested")
}

// Shutdown takes the transport off the network. Streams queued for it are
// closed.
func (t *gossipTransport) Shutdown() error {
	t.downOnce.Do(func() {
		close(t.down)
		for {
			select {
			case c := <-t.streams:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

type mockAddr string

func (a mockAddr) Network() string { return "mock" }
func (a mockAddr) String() string  { return string(a) }
