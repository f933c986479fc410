package resources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
	"github.com/graftcm/graft/internal/systemdbus"
)

// ErrNoSystemd is wrapped by the errors of svc resources on a host whose
// PID 1 is not systemd.
var ErrNoSystemd = errors.New("systemd is not running on this host")

// ErrNoSuchUnit is wrapped by the error of an svc resource whose unit is
// to run or be enabled but that systemd does not find.
var ErrNoSuchUnit = errors.New("no such unit")

// systemd's manager, and the names of what the svc resource uses of it.
const (
	managerPath           = systemdbus.Path
	managerIface          = "org.freedesktop.systemd1.Manager"
	unitIface             = "org.freedesktop.systemd1.Unit"
	dbusPropertiesChanged = "org.freedesktop.DBus.Properties.PropertiesChanged"
	unitPathPrefix        = "/org/freedesktop/systemd1/unit/"
)

// svcSystemd says where an svc resource finds systemd. Its zero value is
// this host's; tests point it at a systemd they booted.
type svcSystemd struct {
	// root is the directory holding the systemd's /run and /proc: whether
	// root/run/systemd/system exists says whether systemd is PID 1 (as
	// sd_booted(3) checks), and root/proc/1/comm names PID 1 otherwise.
	// "" is /.
	root string
	// socket is the private D-Bus socket of the manager the resource
	// talks to (the user's, with session); "" is /run/systemd/private, or
	// $XDG_RUNTIME_DIR/systemd/private. When set, it is the only way.
	socket string
}

// running fails, naming PID 1, unless systemd is PID 1.
func (sd svcSystemd) running() error {
	root := sd.root
	if root == "" {
		root = "/"
	}
	if fi, err := os.Stat(filepath.Join(root, "run/systemd/system")); err == nil && fi.IsDir() {
		return nil
	}
	pid1 := "an unknown process"
	if b, err := os.ReadFile(filepath.Join(root, "proc/1/comm")); err == nil && strings.TrimSpace(string(b)) != "" {
		pid1 = strings.TrimSpace(string(b))
	}
	return fmt.Errorf("svc: %w (PID 1 is %s); the svc resource needs systemd", ErrNoSystemd, pid1)
}

// sdManager is a connection to a systemd manager.
type sdManager struct {
	conn *dbus.Conn
	// bus is true on a bus (which forwards signals only as matched), false
	// on a private socket.
	bus        bool
	subscribed bool
}

// connect checks that systemd runs and connects to its system manager, or
// with session to the user's manager: to the manager's private socket
// where there is one this process may use, else over the bus.
func (sd svcSystemd) connect(ctx context.Context, session bool) (*sdManager, error) {
	if err := sd.running(); err != nil {
		return nil, err
	}
	// forced: a test's systemd, whose socket is the only way to it.
	socket, forced, busDial := sd.socket, sd.socket != "", dbus.ConnectSystemBus
	switch {
	case session:
		runtimeDir := os.Getenv("XDG_RUNTIME_DIR")
		if runtimeDir == "" {
			runtimeDir = "/run/user/" + strconv.Itoa(os.Geteuid())
		}
		if !forced {
			socket = filepath.Join(runtimeDir, "systemd/private")
		}
		busDial = func(opts ...dbus.ConnOption) (*dbus.Conn, error) { return connectSessionBus(runtimeDir, opts...) }
	case socket == "" && os.Geteuid() == 0:
		socket = "/run/systemd/private"
	}
	var privErr error
	if _, err := os.Stat(socket); socket != "" && (err == nil || forced) {
		conn, err := systemdbus.DialPrivate(ctx, socket)
		switch {
		case err == nil:
			return &sdManager{conn: conn}, nil
		case forced:
			return nil, fmt.Errorf("connect to systemd: %w", err)
		}
		privErr = err
	}
	conn, err := busDial(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", errors.Join(privErr, err))
	}
	return &sdManager{conn: conn, bus: true}, nil
}

// connectSessionBus connects to the user's session bus: at
// DBUS_SESSION_BUS_ADDRESS, else at runtimeDir/bus. Unlike godbus's own
// lookup it never launches a bus.
func connectSessionBus(runtimeDir string, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" || addr == "autolaunch:" {
		p := filepath.Join(runtimeDir, "bus")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("no session bus: DBUS_SESSION_BUS_ADDRESS is not set and %w", err)
		}
		addr = "unix:path=" + p
	}
	return dbus.Connect(addr, opts...)
}

func (m *sdManager) close() { m.conn.Close() }

func (m *sdManager) manager() dbus.BusObject { return m.conn.Object(systemdbus.Dest, managerPath) }

// subscribe asks systemd for its signals, once per connection (on a bus,
// a client that has already asked is told so, which is fine too).
func (m *sdManager) subscribe(ctx context.Context) error {
	if m.subscribed {
		return nil
	}
	err := m.manager().CallWithContext(ctx, managerIface+".Subscribe", 0).Err
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.AlreadySubscribed" {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("subscribe to systemd's signals: %w", err)
	}
	m.subscribed = true
	return nil
}

// signals returns a channel receiving the signals of systemd that match
// (on a bus, where signals must be matched to be received; on a private
// socket every signal arrives). stop ends the delivery.
func (m *sdManager) signals(ctx context.Context, matches ...[]dbus.MatchOption) (<-chan *dbus.Signal, func(), error) {
	ch := make(chan *dbus.Signal, 64)
	m.conn.Signal(ch)
	stop := func() { m.conn.RemoveSignal(ch) }
	if m.bus {
		for _, match := range matches {
			match = append(match, dbus.WithMatchSender(systemdbus.Dest))
			if err := m.conn.AddMatchSignalContext(ctx, match...); err != nil {
				stop()
				return nil, nil, fmt.Errorf("match systemd's signals: %w", err)
			}
		}
	}
	if err := m.subscribe(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	return ch, stop, nil
}

// watch returns the signals that say the unit or the enablement of units
// may have changed.
func (m *sdManager) watch(ctx context.Context, unit string) (<-chan *dbus.Signal, func(), error) {
	return m.signals(ctx,
		[]dbus.MatchOption{dbus.WithMatchObjectPath(unitObjectPath(unit)), dbus.WithMatchInterface("org.freedesktop.DBus.Properties")},
		[]dbus.MatchOption{dbus.WithMatchObjectPath(managerPath), dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("UnitFilesChanged")},
		[]dbus.MatchOption{dbus.WithMatchObjectPath(managerPath), dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("Reloading")},
	)
}

// unitStatus is what the svc resource reads of a unit.
type unitStatus struct {
	LoadState, ActiveState, UnitFileState string
	// Job is the unit's queued job, "/" for none.
	Job dbus.ObjectPath
}

// running reports whether the unit runs (or is reloading while it runs).
func (st unitStatus) running() bool {
	return st.ActiveState == "active" || st.ActiveState == "reloading"
}

// status loads the unit (a unit systemd does not find loads as
// "not-found") and reads its state.
func (m *sdManager) status(ctx context.Context, unit string) (unitStatus, error) {
	var p dbus.ObjectPath
	if err := m.manager().CallWithContext(ctx, managerIface+".LoadUnit", 0, unit).Store(&p); err != nil {
		return unitStatus{}, fmt.Errorf("load %s: %w", unit, err)
	}
	props := map[string]dbus.Variant{}
	err := m.conn.Object(systemdbus.Dest, p).CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, unitIface).Store(&props)
	if err != nil {
		return unitStatus{}, fmt.Errorf("read %s: %w", unit, err)
	}
	str := func(k string) string { s, _ := props[k].Value().(string); return s }
	st := unitStatus{LoadState: str("LoadState"), ActiveState: str("ActiveState"), UnitFileState: str("UnitFileState"), Job: "/"}
	// Job is (id u, path o).
	if job, ok := props["Job"].Value().([]any); ok && len(job) == 2 {
		if p, ok := job[1].(dbus.ObjectPath); ok {
			st.Job = p
		}
	}
	return st, nil
}

// settled reads the unit's state once no job is queued for it: a job of
// another client (a systemctl stop in progress) ends first, so that one of
// graft's does not replace and cancel it.
func (m *sdManager) settled(ctx context.Context, unit string) (unitStatus, error) {
	st, err := m.status(ctx, unit)
	if err != nil || st.Job == "/" {
		return st, err
	}
	sigs, stop, err := m.signals(ctx, jobRemovedMatch())
	if err != nil {
		return st, err
	}
	defer stop()
	for {
		// Read again now that JobRemoved signals are caught.
		if st, err = m.status(ctx, unit); err != nil || st.Job == "/" {
			return st, err
		}
		if err := waitJob(ctx, sigs, st.Job); err != nil && !errors.Is(err, errJobNotDone) {
			return st, fmt.Errorf("waiting for the queued job of %s: %w", unit, err)
		}
	}
}

// jobRemovedMatch matches the manager's JobRemoved signals.
func jobRemovedMatch() []dbus.MatchOption {
	return []dbus.MatchOption{dbus.WithMatchObjectPath(managerPath), dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("JobRemoved")}
}

// setStartup enables the unit or disables it (where it is enabled: in
// /etc, or for enabled-runtime in /run), then has systemd reload, as
// systemctl does, so that the links' dependencies take effect.
func (m *sdManager) setStartup(ctx context.Context, unit, action, fileState string) error {
	files := []string{unit}
	var err error
	if action == "enable" {
		// Not runtime, so it holds after a reboot; force replaces links
		// that point elsewhere, as mgmt does.
		err = m.manager().CallWithContext(ctx, managerIface+".EnableUnitFiles", 0, files, false, true).Err
	} else {
		runtime := fileState == "enabled-runtime"
		err = m.manager().CallWithContext(ctx, managerIface+".DisableUnitFiles", 0, files, runtime).Err
	}
	if err != nil {
		return err
	}
	return m.manager().CallWithContext(ctx, managerIface+".Reload", 0).Err
}

// job calls one of the manager's unit methods that queue a job (StartUnit,
// StopUnit, ReloadOrTryRestartUnit) in "replace" mode and waits for the job to end.
func (m *sdManager) job(ctx context.Context, method, unit string) error {
	sigs, stop, err := m.signals(ctx, jobRemovedMatch())
	if err != nil {
		return err
	}
	defer stop()
	var job dbus.ObjectPath
	if err := m.manager().CallWithContext(ctx, managerIface+"."+method, 0, unit, "replace").Store(&job); err != nil {
		return err
	}
	err = waitJob(ctx, sigs, job)
	if errors.Is(err, errJobNotDone) {
		return fmt.Errorf("%w (journalctl -u %s tells why)", err, unit)
	}
	return err
}

// errJobNotDone is wrapped by waitJob's error for a job that ended other
// than done.
var errJobNotDone = errors.New("the job ended")

// waitJob waits for the JobRemoved signal of job, and fails unless its
// result is "done".
func waitJob(ctx context.Context, sigs <-chan *dbus.Signal, job dbus.ObjectPath) error {
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the job: %w", ctx.Err())
		case sig, ok := <-sigs:
			if !ok {
				return errors.New("the connection to systemd closed while waiting for a job")
			}
			// JobRemoved(id u, job o, unit s, result s)
			if sig.Name != managerIface+".JobRemoved" || len(sig.Body) != 4 || sig.Body[1] != job {
				continue
			}
			if result, _ := sig.Body[3].(string); result != "done" {
				return fmt.Errorf("%w %s", errJobNotDone, result)
			}
			return nil
		}
	}
}

// unitObjectPath is the D-Bus object path of the unit: systemd's escape
// keeps ASCII letters, and digits but in first place, and writes every
// other byte as _ and two hex digits.
func unitObjectPath(unit string) dbus.ObjectPath {
	var b strings.Builder
	b.WriteString(unitPathPrefix)
	for i := 0; i < len(unit); i++ {
		c := unit[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return dbus.ObjectPath(b.String())
}
