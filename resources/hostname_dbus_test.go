package resources

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// busConfig is a system bus of the test's own, on which anyone may own
// and call anything.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%SOCKET%</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// startBusDaemon starts a command that runs until the test ends.
func startBusDaemon(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
}

// findHostnamed returns the path of systemd-hostnamed, or skips the test.
func findHostnamed(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/systemd/systemd-hostnamed", "/lib/systemd/systemd-hostnamed"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("this machine has no systemd-hostnamed (neither /usr/lib/systemd/systemd-hostnamed nor /lib/systemd/systemd-hostnamed)")
	return ""
}

// hostnamedProperties collects the names of the properties each
// PropertiesChanged signal of hostnamed names, changed or invalidated.
func hostnamedProperties(ch <-chan *dbus.Signal) []string {
	var names []string
	for {
		select {
		case s := <-ch:
			if len(s.Body) == 3 {
				if changed, ok := s.Body[1].(map[string]dbus.Variant); ok {
					for k := range changed {
						names = append(names, k)
					}
				}
				if inv, ok := s.Body[2].([]string); ok {
					names = append(names, inv...)
				}
			}
		default:
			return names
		}
	}
}

// Where systemd-hostnamed runs on the system bus, the static and pretty
// names go through it (and it tells its listeners); the kernel's name is
// set directly. On a bus without hostnamed, the files are written directly.
func TestHostnameGoesThroughHostnamedWhereItRuns(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	daemonPath := findHostnamed(t)
	busDaemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skipf("this machine has no dbus-daemon: %v", err)
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(busConfig, "%SOCKET%", socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "unix:path=" + socket
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	startBusDaemon(t, nil, busDaemon, "--config-file="+conf, "--nofork", "--nopidfile")
	var conn *dbus.Conn
	eventually(t, time.Minute, "the test's bus to answer", func() bool {
		conn, err = dbus.Connect(addr)
		return err == nil
	})
	defer conn.Close()

	// A bus without hostnamed: the files are written directly.
	rec := &logRecorder{}
	h, rt := newHostname(t, &Hostname{PrettyHostname: "Before"})
	rt.Logger = slog.New(rec)
	converge(t, h, true, false)
	if r := only(t, rec.take(), "changing"); r.attrs["via"] != "file" {
		t.Errorf("without hostnamed: via %q, want file", r.attrs["via"])
	}

	startBusDaemon(t, []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr}, daemonPath)
	eventually(t, time.Minute, "hostnamed to own its name", func() bool {
		var has bool
		err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, hostnamedName).Store(&has)
		return err == nil && has
	})
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(hostnamedPath),
		dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged")); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)

	h, rt = newHostname(t, &Hostname{Hostname: "via-bus", TransientHostname: "kernel-only", PrettyHostname: "Pretty Box"})
	rt.Logger = slog.New(rec)
	converge(t, h, true, false)
	via := map[string]string{}
	for _, r := range rec.take() {
		if r.msg == "changing" {
			via[r.attrs["name"]] = r.attrs["via"]
		}
	}
	if via["static"] != "hostnamed" || via["pretty"] != "hostnamed" || via["transient"] != "sethostname" {
		t.Errorf("set via %v, want static and pretty via hostnamed, transient via sethostname", via)
	}
	if got := readFile(t, staticNameFile); got != "via-bus\n" {
		t.Errorf("/etc/hostname holds %q", got)
	}
	if got := prettyName(t); got != "Pretty Box" {
		t.Errorf("pretty name %q", got)
	}
	if n := kernelName(t); n != "kernel-only" {
		t.Errorf("kernel name %q, want kernel-only", n)
	}
	var told []string
	eventually(t, time.Minute, "hostnamed to signal the static and pretty names", func() bool {
		told = append(told, hostnamedProperties(signals)...)
		return slices.Contains(told, "StaticHostname") && slices.Contains(told, "PrettyHostname")
	})
	converge(t, h, true, true)
}
