//go:build !unix

package cluster

import "net"

// hasInput cannot tell elsewhere: only bytes read count.
func hasInput(net.Conn) bool { return false }
