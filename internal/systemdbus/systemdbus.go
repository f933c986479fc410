// Package systemdbus connects to systemd's private D-Bus socket, which
// systemd serves without a bus daemon to root.
package systemdbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"
)

// Dest and Path name systemd's manager on its private socket.
const (
	Dest = "org.freedesktop.systemd1"
	Path = dbus.ObjectPath("/org/freedesktop/systemd1")
)

// Wait bounds for the first answer: the first ping waits wakeMin, each
// later one twice as long as the one before, up to wakeMax.
const (
	wakeMin = 25 * time.Millisecond
	wakeMax = time.Second
)

// DialPrivate connects to the private socket at path of a systemd (the
// system's, which takes root, or a user's, which takes its user),
// authenticating as this process's user, and returns once systemd answers
// on it. The caller closes the connection.
//
// It pings until systemd answers: systemd's bus server (seen with 252)
// can leave a message that arrived together with the end of the
// authentication unread until another message arrives, so the first call
// on a new connection can wait forever. Each ping is such a message.
func DialPrivate(ctx context.Context, path string) (*dbus.Conn, error) {
	conn, err := dbus.Dial("unix:path=" + path)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	// Authentication has no context of its own: closing the connection
	// ends it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Geteuid()))})
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to %s: %w", path, err)
	}
	if err := wake(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return conn, nil
}

// wake pings systemd until it answers or ctx ends.
func wake(ctx context.Context, conn *dbus.Conn) error {
	obj := conn.Object(Dest, Path)
	for wait := wakeMin; ; wait = min(2*wait, wakeMax) {
		pctx, cancel := context.WithTimeout(ctx, wait)
		err := obj.CallWithContext(pctx, "org.freedesktop.DBus.Peer.Ping", 0).Err
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("no answer from systemd: %w", ctx.Err())
		case !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("ping systemd: %w", err)
		}
	}
}
