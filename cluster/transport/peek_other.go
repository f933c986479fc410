//go:build !unix

package transport

import "net"

// hasInput cannot tell elsewhere: only bytes read count.
func hasInput(net.Conn) bool { return false }
