package resources

import (
	"context"
	"log/slog"
	"slices"

	"github.com/godbus/dbus/v5"
)

// systemd-hostnamed's name and object on the system bus.
const (
	hostnamedName = "org.freedesktop.hostname1"
	hostnamedPath = "/org/freedesktop/hostname1"
)

// hostnamed is a connection to systemd-hostnamed.
type hostnamed struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

// dialHostnamed connects to systemd-hostnamed over the system bus
// (DBUS_SYSTEM_BUS_ADDRESS, else the usual socket). It returns nil where no
// system bus answers, or where hostnamed neither runs nor can be started
// on it: the caller then writes the files itself.
func dialHostnamed(ctx context.Context, log *slog.Logger) *hostnamed {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		log.Debug("no system bus; writing the name files directly", "error", err)
		return nil
	}
	var running bool
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, hostnamedName).Store(&running)
	if err == nil && !running {
		var names []string
		err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names)
		running = slices.Contains(names, hostnamedName)
	}
	if err != nil || !running {
		log.Debug("no systemd-hostnamed on the system bus; writing the name files directly", "error", err)
		conn.Close()
		return nil
	}
	return &hostnamed{conn: conn, obj: conn.Object(hostnamedName, hostnamedPath)}
}

// set calls one of hostnamed's setters (SetStaticHostname,
// SetPrettyHostname), not interactively: graft asks for no password.
func (h *hostnamed) set(ctx context.Context, method, value string) error {
	return h.obj.CallWithContext(ctx, hostnamedName+"."+method, 0, value, false).Err
}

func (h *hostnamed) close() { h.conn.Close() }
