package discovery

import (
	"fmt"
	"net"
	"net/netip"
)

// DefaultGroup is the multicast group and port of the announcements: an
// administratively scoped IPv4 group (239.255.0.0/16, RFC 2365: never
// routed off the site), sent with a TTL of 1 (never routed at all), on
// the port after graft's gossip (7946) and cluster (7947) ports.
const DefaultGroup = "239.255.79.46:7948"

// DefaultGroupAddr is DefaultGroup parsed.
func DefaultGroupAddr() netip.AddrPort { return netip.MustParseAddrPort(DefaultGroup) }

// multicastConn is a Conn on an IPv4 multicast group.
type multicastConn struct {
	c     *net.UDPConn
	group *net.UDPAddr
}

// ListenMulticast joins group on the interface that holds local (the
// address this node advertises, so that a multi-homed host announces on
// the network its peers reach it on), or, for an invalid or unspecified
// local, on the system's default multicast interface. Packets go out of
// that interface with a TTL of 1; this host's other sockets on the group
// receive them too (several agents on one host find each other).
func ListenMulticast(group netip.AddrPort, local netip.Addr) (Conn, error) {
	if !group.Addr().Is4() || !group.Addr().IsMulticast() {
		return nil, fmt.Errorf("discovery: %s is not an IPv4 multicast group", group)
	}
	ifi, err := interfaceOf(local)
	if err != nil {
		return nil, err
	}
	gaddr := net.UDPAddrFromAddrPort(group)
	c, err := net.ListenMulticastUDP("udp4", ifi, gaddr)
	if err != nil {
		return nil, fmt.Errorf("discovery: joining %s: %w", group, err)
	}
	if err := setMulticastOptions(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("discovery: %s: %w", group, err)
	}
	return &multicastConn{c: c, group: gaddr}, nil
}

// interfaceOf returns the interface that holds addr; nil for an invalid
// or unspecified addr.
func interfaceOf(addr netip.Addr) (*net.Interface, error) {
	if !addr.IsValid() || addr.IsUnspecified() {
		return nil, nil
	}
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: listing interfaces: %w", err)
	}
	for i := range ifis {
		addrs, err := ifis[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == addr.Unmap() {
					if ifis[i].Flags&net.FlagMulticast == 0 {
						return nil, fmt.Errorf("discovery: interface %s (of %s) does not support multicast", ifis[i].Name, addr)
					}
					return &ifis[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("discovery: no interface holds the address %s", addr)
}

func (m *multicastConn) Send(b []byte) error {
	_, err := m.c.WriteToUDP(b, m.group)
	return err
}

func (m *multicastConn) Receive(b []byte) (int, netip.AddrPort, error) {
	n, from, err := m.c.ReadFromUDPAddrPort(b)
	return n, from, err
}

func (m *multicastConn) Close() error { return m.c.Close() }
