package resources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/graftcm/graft/engine"
)

// The values of svc's parameters.
const (
	svcRunning  = "running"
	svcStopped  = "stopped"
	svcEnabled  = "enabled"
	svcDisabled = "disabled"
	// maxUnitName is systemd's UNIT_NAME_MAX, ".service" included.
	maxUnitName = 255
)

// Svc keeps a systemd service running or stopped, and enabled or disabled
// at boot, as mgmt's svc resource does. The resource's name is the unit's
// name without ".service", which graft appends. An empty state or startup
// leaves that side of the unit alone.
//
// It talks to systemd over D-Bus: as root to the system manager's private
// socket (no bus daemon needed), else over the system bus; with session,
// to the user's own manager. Where systemd is not PID 1 it fails, saying
// so. Watch follows the unit's state and its enablement as systemd
// announces them. A refresh (a notify edge) restarts the unit when it is
// to run, or for an empty state when it runs; a stopped one stays stopped.
type Svc struct {
	State   string `yaml:"state"`
	Startup string `yaml:"startup"`
	Session bool   `yaml:"session"`

	name string
	// sd says where systemd is; its zero value is this host's.
	sd svcSystemd
	rt *engine.Runtime
}

// Validate checks the unit name and the parameters' values.
func (s *Svc) Validate() error {
	if err := checkUnitName(s.name); err != nil {
		return err
	}
	switch s.State {
	case "", svcRunning, svcStopped:
	default:
		return engine.ParamErrorf("state", "%q is not running or stopped (or empty, to leave it as it is)", s.State)
	}
	switch s.Startup {
	case "", svcEnabled, svcDisabled:
	default:
		return engine.ParamErrorf("startup", "%q is not enabled or disabled (or empty, to leave it as it is)", s.Startup)
	}
	return nil
}

// checkUnitName accepts the name of a service unit, without its suffix,
// as systemd does: letters, digits and ':', '-', '_', '.', '\', and one '@'
// followed by an instance for a template's unit, not starting with '-'.
func checkUnitName(name string) error {
	switch {
	case name == "":
		return engine.ParamErrorf("name", "empty; want the name of a systemd service")
	case strings.HasSuffix(name, ".service"):
		return engine.ParamErrorf("name", "%q: give the unit's name without .service, which graft appends", name)
	case len(name)+len(".service") > maxUnitName:
		return engine.ParamErrorf("name", "%q is too long for a unit name (at most %d bytes with .service)", name, maxUnitName)
	case strings.HasPrefix(name, "-"):
		return engine.ParamErrorf("name", "%q starts with '-'", name)
	case strings.HasPrefix(name, "@") || strings.HasSuffix(name, "@"):
		return engine.ParamErrorf("name", "%q: a template's unit needs a name before '@' and an instance after it", name)
	case strings.Count(name, "@") > 1:
		return engine.ParamErrorf("name", "%q has more than one '@'", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":-_.\\@", r)
		if !ok {
			return engine.ParamErrorf("name", "%q is not a unit name: %q is not a letter, a digit or one of : - _ . \\ @", name, r)
		}
	}
	return nil
}

// unit is the systemd unit's full name.
func (s *Svc) unit() string { return s.name + ".service" }

// Init keeps the runtime.
func (s *Svc) Init(rt *engine.Runtime) error { s.rt = rt; return nil }

// Cleanup does nothing.
func (s *Svc) Cleanup() error { return nil }

// Requires names what a service depends on: the file resources of its unit
// file in systemd's unit directories (the user's, with session), and, for
// a system service, the package that ships it, which provides "svc:" and
// the name. An instance of a template ("getty@tty1") depends on the
// template's file and package as well ("getty@").
func (s *Svc) Requires() []string {
	dirs := []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
		"/lib/systemd/system", "/usr/lib/systemd/system"}
	var uids []string
	if s.Session {
		dirs = []string{"/etc/systemd/user", "/usr/local/lib/systemd/user", "/usr/lib/systemd/user"}
		if home, err := os.UserHomeDir(); err == nil {
			dirs = append([]string{path.Join(home, ".config/systemd/user")}, dirs...)
		}
	}
	names := []string{s.name}
	if i := strings.IndexByte(s.name, '@'); i >= 0 {
		names = append(names, s.name[:i+1])
	}
	for _, n := range names {
		if !s.Session {
			uids = append(uids, "svc:"+n)
		}
		for _, d := range dirs {
			self, _ := engine.PathUIDs(path.Join(d, n+".service"))
			uids = append(uids, self)
		}
	}
	return uids
}

// Watch reports changes of the unit's state (its ActiveState, SubState and
// the rest of its properties), of the enablement of unit files, and
// systemd's reloads, as systemd signals them to a subscribed client.
func (s *Svc) Watch(ctx context.Context) error {
	m, err := s.sd.connect(ctx, s.Session)
	if err != nil {
		return err
	}
	defer m.close()
	sigs, stop, err := m.watch(ctx, s.unit())
	if err != nil {
		return err
	}
	defer stop()
	s.rt.Running()
	unitPath := unitObjectPath(s.unit())
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-sigs:
			if !ok {
				return errors.New("the connection to systemd closed")
			}
			switch {
			case sig.Path == unitPath && sig.Name == dbusPropertiesChanged,
				sig.Path == managerPath && (sig.Name == managerIface+".UnitFilesChanged" || sig.Name == managerIface+".Reloading"):
				s.rt.Event()
			}
		}
	}
}

// CheckApply brings the unit to its state and startup, and restarts it on
// a refresh. It logs each change it makes, or with apply false would make.
func (s *Svc) CheckApply(ctx context.Context, apply bool) (bool, error) {
	m, err := s.sd.connect(ctx, s.Session)
	if err != nil {
		return false, err
	}
	defer m.close()
	unit := s.unit()
	st, err := m.settled(ctx, unit)
	if err != nil {
		return false, err
	}
	if err := s.checkLoaded(st); err != nil {
		return false, err
	}
	checkOK := true
	act := func(action string, do func() error) error {
		checkOK = false
		if !apply {
			s.rt.Logger.Info("would change", "unit", unit, "action", action)
			return nil
		}
		s.rt.Logger.Info("changing unit", "unit", unit, "action", action)
		if err := do(); err != nil {
			return fmt.Errorf("%s %s: %w", action, unit, err)
		}
		return nil
	}
	action, startupOK, err := s.startupChange(st)
	if err != nil {
		return false, err
	}
	if !startupOK {
		if err := act(action, func() error { return m.setStartup(ctx, unit, action, st.UnitFileState) }); err != nil {
			return false, err
		}
	}
	switch running := st.running(); {
	case s.State == svcRunning && !running:
		// Started now, it needs no restart for a refresh.
		err = act("start", func() error { return m.job(ctx, "StartUnit", unit) })
	case s.State == svcStopped:
		if st.ActiveState != "inactive" && st.ActiveState != "failed" {
			err = act("stop", func() error { return m.job(ctx, "StopUnit", unit) })
		}
	case running && s.rt.Refresh():
		// A unit that runs and is to run, or whose state is left alone:
		// reloaded if it can be (ExecReload), else restarted, as mgmt does.
		err = act("reload or restart", func() error { return m.job(ctx, "ReloadOrTryRestartUnit", unit) })
	}
	if err != nil {
		return false, err
	}
	return checkOK, nil
}

// checkLoaded fails if the unit cannot be brought where it is asked to be:
// it is not found, masked, or its file is broken. A unit that is not there
// is stopped and disabled already.
func (s *Svc) checkLoaded(st unitStatus) error {
	if st.LoadState == "loaded" || s.State != svcRunning && s.Startup != svcEnabled {
		return nil
	}
	switch st.LoadState {
	case "not-found":
		return fmt.Errorf("%w: %s", ErrNoSuchUnit, s.unit())
	case "masked":
		return fmt.Errorf("%s is masked: it cannot be started or enabled until it is unmasked", s.unit())
	default:
		return fmt.Errorf("%s could not be loaded (load state %s)", s.unit(), st.LoadState)
	}
}

// startupChange reports whether the unit's enablement is as asked (ok) and,
// if not, the action that makes it so: "enable" or "disable".
func (s *Svc) startupChange(st unitStatus) (action string, ok bool, err error) {
	switch s.Startup {
	case svcEnabled:
		switch st.UnitFileState {
		case "enabled":
			return "", true, nil
		case "disabled", "enabled-runtime", "linked", "linked-runtime":
			return "enable", false, nil
		}
		return "", false, fmt.Errorf("startup: %s cannot be enabled: its unit file state is %q%s",
			s.unit(), st.UnitFileState, unitFileStateHint(st.UnitFileState))
	case svcDisabled:
		if st.UnitFileState == "enabled" || st.UnitFileState == "enabled-runtime" {
			return "disable", false, nil
		}
	}
	return "", true, nil
}

func unitFileStateHint(state string) string {
	switch state {
	case "static":
		return " (it has no [Install] section)"
	case "indirect":
		return " (it is enabled only through other units)"
	case "masked", "masked-runtime":
		return " (unmask it first)"
	case "generated", "transient":
		return " (it has no unit file of its own)"
	}
	return ""
}
