// Package systemdtest gives tests a real systemd to talk to: the host's own
// when PID 1 is systemd, else one it boots as PID 1 of private namespaces on
// a private root.
//
// A booted systemd runs in new pid, mount, uts, ipc, net and cgroup
// namespaces, on an overlay of the host's root whose writes land in a tmpfs,
// with /proc/sys and /sys read-only and a cgroup of its own. It starts
// graft-test.target, which wants nothing: none of sysinit.target's units
// (tmpfiles, sysctl, modules, udev) ever run, and they are masked besides.
// Systemd.User gives root's user manager next to it. Everything they do
// dies with them when the test ends.
//
// Start skips the test, saying what is missing, where neither is possible:
// not root, no systemd binary, no overlayfs, no unshare or nsenter, a
// cgroup layout it does not know, or namespaces the kernel refuses.
package systemdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/graftcm/graft/internal/systemdbus"
)

// Where systemd keeps what the tests use, relative to its root.
const (
	privateSocket = "/run/systemd/private"
	// proxySocket is where a booted systemd's bus proxy listens, and
	// userProxySocket the proxy to root's user manager.
	proxySocket     = "/run/graft-test/bus.sock"
	userProxySocket = "/run/graft-test/user-bus.sock"
	bootedDir       = "/run/systemd/system" // exists iff systemd is PID 1 (sd_booted)
	// TestTarget is a target that exists in a booted systemd and wants
	// nothing; test units may name it in WantedBy= to be enabled without
	// ever being started at a boot.
	TestTarget = "graft-test.target"
	// UnitPrefix starts the name of every unit AddUnit writes.
	UnitPrefix = "graft-test-"
)

// bootTimeout bounds the wait for a booted systemd to answer; generous, as
// tests share a loaded machine.
const bootTimeout = 2 * time.Minute

// Systemd is a systemd a test talks to.
type Systemd struct {
	// PID is the host's PID of the systemd: 1 for the host's own.
	PID int
	// Root is the host path of the systemd's root directory: /proc/PID/root
	// for a booted one, / for the host's own.
	Root string
	// PrivateSocket is the host path of a socket that speaks as the
	// systemd's private D-Bus socket does, accepting root without a bus
	// daemon: the socket itself for the host's systemd, a proxy to it for
	// a booted one (which refuses clients whose PID it cannot see, as it
	// cannot see any outside its pid namespace).
	PrivateSocket string
	// UnitDir is the host path of a directory the systemd loads units
	// from: /etc/systemd/system in a booted one's root, /run/systemd/system
	// on the host.
	UnitDir string
	// Booted reports whether Start booted this systemd (false: the host's).
	Booted bool

	conn *dbus.Conn
	env  []string // set for the commands Run runs
}

// Start returns a systemd for t: the host's own where PID 1 is systemd,
// else one booted for t and killed when t ends. It skips t where neither
// is possible, naming what is missing.
func Start(t testing.TB) *Systemd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("systemdtest: needs root, to boot systemd in namespaces or to manage the host's")
	}
	var s *Systemd
	if fi, err := os.Stat(bootedDir); err == nil && fi.IsDir() {
		s = &Systemd{PID: 1, Root: "/", PrivateSocket: privateSocket, UnitDir: bootedDir}
	} else {
		s = boot(t)
	}
	// Not t.Context(): the cleanups of AddUnit still use the connection.
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	conn, err := systemdbus.DialPrivate(ctx, s.PrivateSocket)
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	s.conn = conn
	t.Cleanup(func() { conn.Close() })
	return s
}

// Path returns the host path of p, a path in the systemd's root.
func (s *Systemd) Path(p string) string { return filepath.Join(s.Root, p) }

// Run runs a command in the systemd's namespaces (on the host for the
// host's own systemd) and returns its combined output.
func (s *Systemd) Run(ctx context.Context, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errors.New("systemdtest: run: no command")
	}
	if len(s.env) > 0 {
		args = append(append([]string{"env"}, s.env...), args...)
	}
	var cmd *exec.Cmd
	if s.Booted {
		ns := []string{"-t", fmt.Sprint(s.PID), "-m", "-p", "-u", "-i", "-n", "-C", "--"}
		cmd = exec.CommandContext(ctx, "nsenter", append(ns, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, args[0], args[1:]...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("systemdtest: %v: %w: %s", args, err, out)
	}
	return out, nil
}

// User returns root's user manager next to a booted systemd, as graft's
// svc resources with session: true see it: PrivateSocket reaches its
// private socket, UnitDir is /etc/systemd/user in the root, Run runs
// commands with its XDG_RUNTIME_DIR (so "systemctl --user" reaches it).
// It starts graft-test.target, which wants nothing. With the host's own
// systemd, whose root may run no user manager, it skips t.
func (s *Systemd) User(t testing.TB) *Systemd {
	t.Helper()
	if !s.Booted {
		t.Skip("systemdtest: a user manager is only started next to a booted systemd, not the host's")
	}
	u := *s
	u.PrivateSocket = s.Path(userProxySocket)
	u.UnitDir = s.Path("/etc/systemd/user")
	u.env = []string{"XDG_RUNTIME_DIR=/run/user/0"}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	conn, err := systemdbus.DialPrivate(ctx, u.PrivateSocket)
	if err != nil {
		t.Fatalf("systemdtest: user manager: %v", err)
	}
	u.conn = conn
	t.Cleanup(func() { conn.Close() })
	return &u
}

// manager is systemd's manager object.
func (s *Systemd) manager() dbus.BusObject {
	return s.conn.Object(systemdbus.Dest, systemdbus.Path)
}

// Reload makes systemd reload its units, and returns once it has.
func (s *Systemd) Reload(ctx context.Context) error {
	return s.manager().CallWithContext(ctx, "org.freedesktop.systemd1.Manager.Reload", 0).Err
}

// UnitProperty reads a property of the unit (interface
// org.freedesktop.systemd1.Unit, or .Service for iface "Service").
func (s *Systemd) UnitProperty(ctx context.Context, unit, iface, name string) (any, error) {
	var path dbus.ObjectPath
	if err := s.manager().CallWithContext(ctx, "org.freedesktop.systemd1.Manager.LoadUnit", 0, unit).Store(&path); err != nil {
		return nil, fmt.Errorf("load %s: %w", unit, err)
	}
	var v dbus.Variant
	err := s.conn.Object("org.freedesktop.systemd1", path).CallWithContext(ctx,
		"org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1."+iface, name).Store(&v)
	if err != nil {
		return nil, fmt.Errorf("%s: property %s: %w", unit, name, err)
	}
	return v.Value(), nil
}

// ActiveState returns the unit's ActiveState ("active", "inactive", ...),
// or "error: ..." if it cannot be read.
func (s *Systemd) ActiveState(ctx context.Context, unit string) string {
	v, err := s.UnitProperty(ctx, unit, "Unit", "ActiveState")
	if err != nil {
		return "error: " + err.Error()
	}
	st, _ := v.(string)
	return st
}

// AddUnit writes a service unit named graft-test-<random>.service with the
// given content into UnitDir, makes systemd load it, and returns its name
// without ".service". When t ends it is stopped, disabled and removed.
func (s *Systemd) AddUnit(t testing.TB, content string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := UnitPrefix + hex.EncodeToString(b)
	file := filepath.Join(s.UnitDir, name+".service")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	t.Cleanup(func() { s.removeUnit(t, name, file) })
	if err := s.Reload(t.Context()); err != nil {
		t.Fatalf("systemdtest: daemon-reload: %v", err)
	}
	return name
}

// removeUnit undoes AddUnit. In a booted systemd, which dies with the
// test, only the file goes; on the host the unit is stopped and disabled
// first.
func (s *Systemd) removeUnit(t testing.TB, name, file string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !s.Booted {
		if out, err := s.Run(ctx, "systemctl", "disable", "--now", name+".service"); err != nil {
			t.Errorf("systemdtest: clean up %s: %v: %s", name, err, out)
		}
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("systemdtest: %v", err)
	}
	if !s.Booted {
		if err := s.Reload(ctx); err != nil {
			t.Errorf("systemdtest: daemon-reload: %v", err)
		}
	}
}
