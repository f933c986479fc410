//go:build unix

package transport

import (
	"net"
	"syscall"
)

// hasInput reports whether the peer of c has sent bytes not read yet,
// without reading them or waiting.
func hasInput(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	var n int
	// Control, not Read: Read would wait for the read lock that a
	// goroutine blocked reading the connection holds. The peek neither
	// blocks nor takes a byte.
	_ = raw.Control(func(fd uintptr) {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}

// peerClosed reports whether the peer of c, an idle connection (nothing
// is due to be read from it), has closed it or sent anything at all,
// without reading or waiting: it peeks at the socket under c (through
// NetConn, which TLS and the mux's connections have). ok is false if c
// has no socket under it. Bytes pending on an idle connection count as
// closed: a TLS peer that closes sends its close alert before its end of
// stream, and a connection out of step with its peer is no use either.
func peerClosed(c net.Conn) (closed, ok bool) {
	sc, ok := socketOf(c)
	if !ok {
		return false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var b [1]byte
	var rerr error
	cerr := raw.Control(func(fd uintptr) {
		for {
			_, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if rerr != syscall.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return true, true // closed on this side
	}
	// Nothing to read yet: open. Otherwise a byte, the end of the stream
	// (no error, no byte) or an error such as a reset.
	return rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK, true
}

// socketOf returns the socket under c, unwrapping connections that
// carry another (TLS, the mux's tracking) through their NetConn.
func socketOf(c net.Conn) (syscall.Conn, bool) {
	for range 8 { // a bound, not a depth any connection here has
		if sc, ok := c.(syscall.Conn); ok {
			return sc, true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = u.NetConn()
	}
	return nil, false
}
