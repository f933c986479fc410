package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// maxSocketPath is the longest path a unix socket can have on Linux: the
// 108 bytes of sun_path less the terminating NUL.
const maxSocketPath = 107

// ListenUnix listens on a unix socket at path, created mode 0600 (the mode
// is set before the socket appears, so no other user can connect even for
// a moment). A socket file already at path is removed if nothing answers
// on it (it was left by an agent that was killed); if something does,
// ListenUnix fails. Closing the listener removes the file.
func ListenUnix(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("api: socket path %s is %d bytes, longer than the %d a unix socket allows: use a shorter data dir", path, len(path), maxSocketPath)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		return err
	}}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	// Where the mode set before bind is not honoured, set it now.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	return ln, nil
}

// removeStaleSocket removes the socket at path if nothing answers on it.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("api: %s exists and is not a socket; remove it if it is not needed", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("api: something already answers on %s (another graft agent?)", path)
	case !errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("api: cannot tell whether %s is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api: removing the stale socket: %w", err)
	}
	return nil
}

// ErrNotLoopback is returned by ListenTCP for an address that is not a
// loopback one.
var ErrNotLoopback = errors.New("not a loopback address")

// ListenTCP listens on a loopback TCP address such as "127.0.0.1:7948",
// "[::1]:7948" or "localhost:7948" (port 0 picks a free one). Any other
// address is refused: the API has no authentication.
func ListenTCP(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("api: address %q: %w", addr, err)
	}
	refuse := fmt.Errorf("api: address %q is %w: the local API has no authentication, so it listens only on 127.0.0.1, [::1] or localhost", addr, ErrNotLoopback)
	if !IsLoopbackHost(host) {
		return nil, refuse
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		ln.Close() // localhost resolved to something else
		return nil, refuse
	}
	return ln, nil
}

// IsLoopbackHost reports whether host (with or without a port) is
// "localhost" or a loopback IP address.
func IsLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
