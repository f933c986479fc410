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
