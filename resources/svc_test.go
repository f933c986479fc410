package resources

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/systemdtest"
)

// sleepUnit is a test service that runs until stopped and can be enabled
// (into graft-test.target, which nothing ever starts at a boot). It has no
// default dependencies, so starting it starts nothing else.
const sleepUnit = "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=" + systemdtest.TestTarget + "\n"

// newSvc returns an initialised svc resource for the unit name of sd.
func newSvc(t *testing.T, sd *systemdtest.Systemd, name, state, startup string) (*Svc, *testRuntime) {
	t.Helper()
	s := &Svc{name: name, State: state, Startup: startup, sd: svcSystemd{root: sd.Root, socket: sd.PrivateSocket}}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	rt := newTestRuntime("svc", name)
	if err := s.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	return s, rt
}

// activeState reads the unit's ActiveState.
func activeState(t *testing.T, sd *systemdtest.Systemd, name string) string {
	t.Helper()
	return sd.ActiveState(t.Context(), name+".service")
}

// mainPID reads the service's main PID (0 when it runs none).
func mainPID(t *testing.T, sd *systemdtest.Systemd, name string) uint32 {
	t.Helper()
	v, err := sd.UnitProperty(t.Context(), name+".service", "Service", "MainPID")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := v.(uint32)
	return pid
}

func unitFileState(t *testing.T, sd *systemdtest.Systemd, name string) string {
	t.Helper()
	v, err := sd.UnitProperty(t.Context(), name+".service", "Unit", "UnitFileState")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := v.(string)
	return s
}

// systemctl runs systemctl next to the systemd: another process than graft.
func systemctl(t *testing.T, sd *systemdtest.Systemd, args ...string) {
	t.Helper()
	if out, err := sd.Run(t.Context(), append([]string{"systemctl"}, args...)...); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// A stopped unit to run: apply false only reports; apply starts it; then
// it is in state, and a further run changes nothing (the same process
// runs).
func TestSvcStartsAStoppedUnitThenIsInState(t *testing.T) {
	sd := systemdtest.Start(t)
	name := sd.AddUnit(t, sleepUnit)
	s, _ := newSvc(t, sd, name, svcRunning, "")

	converge(t, s, false, false)
	if st := activeState(t, sd, name); st != "inactive" {
		t.Fatalf("apply false changed the unit: %s", st)
	}
	converge(t, s, true, false)
	if st := activeState(t, sd, name); st != "active" {
		t.Fatalf("after apply the unit is %s, want active", st)
	}
	pid := mainPID(t, sd, name)
	converge(t, s, true, true)
	if got := mainPID(t, sd, name); got != pid || pid == 0 {
		t.Errorf("main PID %d after a run in state, was %d: the unit was touched", got, pid)
	}
}

// A running unit to stop is stopped, then in state.
func TestSvcStopsARunningUnit(t *testing.T) {
	sd := systemdtest.Start(t)
	name := sd.AddUnit(t, sleepUnit)
	systemctl(t, sd, "start", name+".service")
	s, _ := newSvc(t, sd, name, svcStopped, "")
	converge(t, s, true, false)
	if st := activeState(t, sd, name); st != "inactive" {
		t.Fatalf("after apply the unit is %s, want inactive", st)
	}
	converge(t, s, true, true)
}

// startup enabled links the unit where its [Install] section says (in the
// systemd's /etc), disabled removes the link; systemd reports the unit
// file state accordingly, and apply false changes nothing.
func TestSvcEnablesAndDisablesTheUnitAtBoot(t *testing.T) {
	sd := systemdtest.Start(t)
	name := sd.AddUnit(t, sleepUnit)
	link := sd.Path(filepath.Join("/etc/systemd/system", systemdtest.TestTarget+".wants", name+".service"))

	on, _ := newSvc(t, sd, name, "", svcEnabled)
	converge(t, on, false, false)
	if _, err := os.Lstat(link); err == nil {
		t.Fatal("apply false made the link")
	}
	converge(t, on, true, false)
	if target, err := os.Readlink(link); err != nil || filepath.Base(target) != name+".service" {
		t.Fatalf("link %s -> %q (%v), want it to point at the unit", link, target, err)
	}
	if st := unitFileState(t, sd, name); st != "enabled" {
		t.Errorf("unit file state %q, want enabled", st)
	}
	converge(t, on, true, true)
	if st := activeState(t, sd, name); st != "inactive" {
		t.Errorf("enabling started the unit: %s", st)
	}

	off, _ := newSvc(t, sd, name, "", svcDisabled)
	converge(t, off, true, false)
	if _, err := os.Lstat(link); err == nil {
		t.Fatal("disabled left the link")
	}
	if st := unitFileState(t, sd, name); st != "disabled" {
		t.Errorf("unit file state %q, want disabled", st)
	}
	converge(t, off, true, true)
}

// A unit without an [Install] section cannot be enabled: the error says so
// instead of CheckApply trying again for ever.
func TestSvcRefusesToEnableAStaticUnit(t *testing.T) {
	sd := systemdtest.Start(t)
	name := sd.AddUnit(t, "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/sleep infinity\n")
	s, _ := newSvc(t, sd, name, "", svcEnabled)
	_, err := s.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), `unit file state is "static" (it has no [Install] section)`) {
		t.Fatalf("got %v, want the static state named", err)
	}
}

// A refresh restarts a unit without ExecReload that is to run (its main
// process changes) and one whose state is left alone while it runs; a
// unit to stay stopped is not started by it.
func TestSvcRefreshRestartsTheUnit(t *testing.T) {
	sd := systemdtest.Start(t)
	for _, state := range []string{svcRunning, ""} {
		t.Run("state="+state, func(t *testing.T) {
			name := sd.AddUnit(t, sleepUnit)
			systemctl(t, sd, "start", name+".service")
			s, rt := newSvc(t, sd, name, state, "")
			converge(t, s, true, true)
			before := mainPID(t, sd, name)
			rt.refresh.Store(true)
			converge(t, s, true, false)
			after := mainPID(t, sd, name)
			if st := activeState(t, sd, name); st != "active" || after == before || after == 0 {
				t.Errorf("after the refresh the unit is %s with main PID %d (was %d), want it restarted", st, after, before)
			}
		})
	}
	t.Run("state=stopped", func(t *testing.T) {
		name := sd.AddUnit(t, sleepUnit)
		s, rt := newSvc(t, sd, name, svcStopped, "")
		rt.refresh.Store(true)
		converge(t, s, true, true)
		if st := activeState(t, sd, name); st != "inactive" {
			t.Errorf("a refresh of a unit to stay stopped left it %s", st)
		}
	})
}

// A refresh reloads a unit that can be reloaded, as mgmt's does (systemd's
// reload-or-try-restart): its reload command runs and its main process
// stays.
func TestSvcRefreshReloadsAUnitWithExecReload(t *testing.T) {
	sd := systemdtest.Start(t)
	marker := "/run/graft-svc-reloaded-" + strconv.Itoa(os.Getpid())
	name := sd.AddUnit(t, strings.Replace(sleepUnit, "[Install]",
		"ExecReload=/bin/sh -c 'echo reloaded >>"+marker+"'\n[Install]", 1))
	systemctl(t, sd, "start", name+".service")
	s, rt := newSvc(t, sd, name, svcRunning, "")
	converge(t, s, true, true)
	before := mainPID(t, sd, name)
	rt.refresh.Store(true)
	converge(t, s, true, false)
	if after := mainPID(t, sd, name); after != before {
		t.Errorf("main PID %d after the refresh, was %d: restarted, want reloaded", after, before)
	}
	if b, err := os.ReadFile(sd.Path(marker)); err != nil || string(b) != "reloaded\n" {
		t.Errorf("the reload command wrote %q (%v), want one line", b, err)
	}
}

// A unit systemd does not know cannot run: the error says so. To be
// stopped and disabled, it already is.
func TestSvcUnknownUnitFailsOnlyWhenItMustRun(t *testing.T) {
	sd := systemdtest.Start(t)
	name := systemdtest.UnitPrefix + "missing"
	s, _ := newSvc(t, sd, name, svcRunning, "")
	if _, err := s.CheckApply(t.Context(), true); !errors.Is(err, ErrNoSuchUnit) {
		t.Errorf("to run: got %v, want ErrNoSuchUnit", err)
	}
	off, _ := newSvc(t, sd, name, svcStopped, svcDisabled)
	converge(t, off, true, true)
}

// runSvcGraph runs an engine on one svc vertex until the test ends.
func runSvcGraph(t *testing.T, s *Svc) {
	t.Helper()
	g := engine.NewGraph("svc")
	addVertex(t, g, "svc", s.name, s, engine.Meta{})
	runGraph(t, g)
}

// The engine keeps a unit running: stopped by another process (systemctl,
// next to the systemd), it is started again, with no poll (the svc's Watch
// hears it from systemd).
func TestSvcEngineRestartsAUnitStoppedByAnotherProcess(t *testing.T) {
	sd := systemdtest.Start(t)
	name := sd.AddUnit(t, sleepUnit)
	s := &Svc{name: name, State: svcRunning, sd: svcSystemd{root: sd.Root, socket: sd.PrivateSocket}}
	runSvcGraph(t, s)
	var first uint32
	eventually(t, time.Minute, "the engine starts the unit", func() bool {
		first = mainPID(t, sd, name)
		return activeState(t, sd, name) == "active" && first != 0
	})
	systemctl(t, sd, "stop", name+".service")
	eventually(t, time.Minute, "the engine starts the stopped unit again", func() bool {
		pid := mainPID(t, sd, name)
		return activeState(t, sd, name) == "active" && pid != 0 && pid != first
	})
}

// The engine keeps a unit enabled: disabled by another process, it is
// enabled again.
func TestSvcEngineReenablesAUnitDisabledByAnotherProcess(t *testing.T) {
	sd := systemdtest.Start(t)
	name := sd.AddUnit(t, sleepUnit)
	s := &Svc{name: name, Startup: svcEnabled, sd: svcSystemd{root: sd.Root, socket: sd.PrivateSocket}}
	runSvcGraph(t, s)
	eventually(t, time.Minute, "the engine enables the unit", func() bool { return unitFileState(t, sd, name) == "enabled" })
	systemctl(t, sd, "disable", name+".service")
	eventually(t, time.Minute, "the engine enables the disabled unit again", func() bool { return unitFileState(t, sd, name) == "enabled" })
}

// With session the resource manages a unit of the user's own manager (here
// root's, next to the booted systemd): it starts and enables it there, not
// in the system manager (the link is in root's ~/.config/systemd/user),
// and the engine restarts it when "systemctl --user stop" stops it.
func TestSvcSessionManagesTheUsersManager(t *testing.T) {
	sd := systemdtest.Start(t)
	user := sd.User(t)
	name := user.AddUnit(t, sleepUnit)
	// The user's manager is found as graft finds it, at
	// $XDG_RUNTIME_DIR/systemd/private; only the root is the test's.
	runtimeDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(runtimeDir, "systemd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(user.PrivateSocket, filepath.Join(runtimeDir, "systemd/private")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)
	hook := svcSystemd{root: sd.Root}
	s := &Svc{name: name, State: svcRunning, Startup: svcEnabled, Session: true, sd: hook}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Init(&newTestRuntime("svc", name).Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, s, true, false)
	if st := activeState(t, user, name); st != "active" {
		t.Fatalf("the user's unit is %s, want active", st)
	}
	if st := unitFileState(t, user, name); st != "enabled" {
		t.Errorf("the user's unit file state is %q, want enabled", st)
	}
	link := sd.Path(filepath.Join("/root/.config/systemd/user", systemdtest.TestTarget+".wants", name+".service"))
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("no link in the user's unit directory: %v", err)
	}
	if st := activeState(t, sd, name); st == "active" {
		t.Error("the system manager runs the unit")
	}
	converge(t, s, true, true)

	runSvcGraph(t, &Svc{name: name, State: svcRunning, Session: true, sd: hook})
	first := mainPID(t, user, name)
	systemctl(t, user, "--user", "stop", name+".service")
	eventually(t, time.Minute, "the engine starts the user's stopped unit again", func() bool {
		pid := mainPID(t, user, name)
		return activeState(t, user, name) == "active" && pid != 0 && pid != first
	})
}
