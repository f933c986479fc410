package systemdbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/graftcm/graft/internal/systemdbus"
	"github.com/graftcm/graft/internal/systemdtest"
)

// The first call on a new connection is answered, every time: systemd's
// bus server can leave a message sent right after the authentication
// unread until another arrives, so without DialPrivate's pings most of
// these calls would wait for ever (14 of 20 did).
func TestDialPrivateFirstCallIsAnswered(t *testing.T) {
	s := systemdtest.Start(t)
	for i := range 20 {
		conn, err := systemdbus.DialPrivate(t.Context(), s.PrivateSocket)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		var p dbus.ObjectPath
		err = conn.Object(systemdbus.Dest, systemdbus.Path).CallWithContext(ctx,
			"org.freedesktop.systemd1.Manager.LoadUnit", 0, systemdtest.TestTarget).Store(&p)
		cancel()
		conn.Close()
		if err != nil {
			t.Fatalf("connection %d: first call: %v", i, err)
		}
	}
}
