//go:build !linux

package api

import (
	"context"
	"errors"
	"net"
)

// dialUnixPath connects to the unix socket at path.
func dialUnixPath(ctx context.Context, path string) (net.Conn, error) {
	if len(path) > maxSocketPath {
		return nil, socketPathError(path, "so it cannot be dialled: use a shorter data dir")
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// peerUID would return the user of the process at the other end of a unix
// socket connection; graft reads it only on Linux, so elsewhere it fails
// and the client refuses to talk to a socket it cannot check.
func peerUID(net.Conn) (int, error) {
	return 0, errors.New("this system does not tell graft who serves a unix socket")
}
