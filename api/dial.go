package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
)

// ErrForeignAgent means the process that serves an agent's unix socket
// belongs to another user than the client's, and not to root: whatever
// the client sent would go to that user, so it sends nothing.
var ErrForeignAgent = errors.New("another user serves the socket")

// foreignSocketError is ErrForeignAgent for one socket.
type foreignSocketError struct {
	path      string
	uid, euid int // the serving process's user, the client's
}

func (e *foreignSocketError) Error() string {
	notYou := fmt.Sprintf("neither you (uid %d) nor root", e.euid)
	if e.euid == 0 {
		notYou = "not root, which you are"
	}
	return fmt.Sprintf("api: not talking to the agent at %s: %v: %s, %s; "+
		"it may be another user's agent, or a socket put there to receive what you send",
		e.path, ErrForeignAgent, userName(e.uid), notYou)
}

func (e *foreignSocketError) Is(target error) bool { return target == ErrForeignAgent }

// userName names the user uid: "user NAME (uid N)", or "uid N" if the
// system does not know it.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// DialUnix connects to the agent's unix socket at path, and checks who
// serves it: a process of the client's own user or of root, or it fails
// with ErrForeignAgent. A path the user trusts can still lead to another
// user's socket (a symbolic link repointed, a directory renamed between a
// check and the dial), and whatever the client sent would go to that user.
// The check is made on every connection, so a client that reconnects is
// checked again. A path longer than a unix socket address holds is
// reached through its directory, so an agent in a deep directory answers
// too.
//
// When nothing listens at path, the error is a *net.OpError of Op "dial"
// naming path.
func DialUnix(ctx context.Context, path string) (net.Conn, error) {
	conn, err := dialUnixPath(ctx, path)
	if err != nil {
		return nil, err
	}
	uid, err := peerUID(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("api: cannot tell who serves %s, so not talking to it: %w", path, err)
	}
	if euid := os.Geteuid(); uid != euid && uid != 0 {
		conn.Close()
		return nil, &foreignSocketError{path: path, uid: uid, euid: euid}
	}
	return conn, nil
}

// socketPathError is the error of a socket path too long to dial.
func socketPathError(path, why string) error {
	return fmt.Errorf("api: socket path %s is %d bytes, longer than the %d a unix socket address holds, %s",
		path, len(path), maxSocketPath, why)
}

// dialError is a failure to connect to path: a *net.OpError naming the
// path the caller asked for, not the one dialled.
func dialError(path string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	return &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: err}
}
