package discovery

import (
	"net"

	"golang.org/x/sys/unix"
)

// setMulticastOptions loops the group's packets back to this host's
// other sockets (Go's ListenMulticastUDP turns that off), keeps the TTL at
// 1, and receives only the groups this socket joined.
func setMulticastOptions(c *net.UDPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.IP_MULTICAST_LOOP, 1}, {unix.IP_MULTICAST_TTL, 1}, {unix.IP_MULTICAST_ALL, 0}} {
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, o[0], o[1]); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
