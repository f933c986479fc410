package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// dialUnixPath connects to the unix socket at path. A path too long for a
// socket address is dialled as /proc/self/fd/N/NAME, N a descriptor of its
// directory: no working directory changes, so other goroutines see none.
func dialUnixPath(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	if len(path) <= maxSocketPath {
		return d.DialContext(ctx, "unix", path)
	}
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, dialError(path, os.NewSyscallError("open "+dir, err))
	}
	defer syscall.Close(fd)
	short := "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name
	if len(short) > maxSocketPath {
		return nil, socketPathError(path, "and so is its name alone")
	}
	conn, err := d.DialContext(ctx, "unix", short)
	if err != nil {
		if _, serr := os.Stat(filepath.Dir(short)); errors.Is(serr, fs.ErrNotExist) {
			return nil, socketPathError(path, "and /proc, through which graft reaches it, is not mounted")
		}
		return nil, dialError(path, err)
	}
	return conn, nil
}

// peerUID returns the user of the process at the other end of a unix
// socket connection: for a client's connection, the process that
// listens (SO_PEERCRED).
func peerUID(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("a %T is not a socket", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	return int(cred.Uid), nil
}
