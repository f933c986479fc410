//go:build !linux

package discovery

import "net"

// setMulticastOptions keeps the system's defaults elsewhere than Linux.
func setMulticastOptions(*net.UDPConn) error { return nil }
