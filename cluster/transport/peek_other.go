//go:build !unix

package transport

import "net"

// hasInput cannot tell elsewhere: only bytes read count.
func hasInput(net.Conn) bool { return false }

// peerClosed cannot tell elsewhere without reading: ok is false.
func peerClosed(net.Conn) (closed, ok bool) { return false, false }
