package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/graftcm/graft/internal/systemdtest"
)

// purpleideaUnit is the unit mgmt's svc examples manage, as a test gives
// it: a service that runs until stopped, enabled by graft-test.target
// (which a booted test systemd never starts at a boot). It has no default
// dependencies: the booted systemd masks sysinit.target.
const purpleideaUnit = "[Unit]\nDescription=mgmt's svc example service\nDefaultDependencies=no\n" +
	"[Service]\nExecStart=/bin/sleep infinity\n" +
	"[Install]\nWantedBy=" + systemdtest.TestTarget + "\n"

// bootedSystemd boots a systemd for t on a private root, with the test
// binary (graft, with GRAFT_TEST_BINARY=1) at /usr/local/bin/graft in it.
// It skips t where the machine cannot boot one, or where PID 1 is systemd:
// the example would start and enable a purpleidea of the host.
func bootedSystemd(t *testing.T) *systemdtest.Systemd {
	t.Helper()
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("PID 1 is systemd: the example would start and enable a unit purpleidea of this host")
	}
	s := systemdtest.Start(t)
	if !s.Booted {
		t.Skip("PID 1 is systemd: the example would start and enable a unit purpleidea of this host")
	}
	copyFile(t, os.Args[0], s.Path("/usr/local/bin/graft"), 0o755)
	return s
}

// copyFile copies the file from to the path to, made with mode perm.
func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// runInSystemd runs the example src with `graft run --converged-exit` in
// the namespaces of s, the systemd its PID 1, with env added to graft's
// environment, and fails t unless graft exits 0.
func runInSystemd(t *testing.T, s *systemdtest.Systemd, src []byte, name string, env ...string) {
	t.Helper()
	if err := os.WriteFile(s.Path("/root/"+name), src, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args := append(append([]string{"env", "GRAFT_TEST_BINARY=1"}, env...), "/usr/local/bin/graft",
		"run", "--cluster-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
		"--tmp-prefix", "--converged-timeout=0", "--converged-exit", "yaml", "/root/"+name)
	if out, err := s.Run(ctx, args...); err != nil {
		t.Fatalf("graft run %s in the booted systemd: %v", name, err)
	} else {
		t.Logf("graft run %s:\n%s", name, out)
	}
}

// wantUnit fails t unless the unit's property of interface Unit has the
// value want in the manager s.
func wantUnit(t *testing.T, s *systemdtest.Systemd, unit, property, want string) {
	t.Helper()
	v, err := s.UnitProperty(t.Context(), unit, "Unit", property)
	if got, _ := v.(string); err != nil || got != want {
		t.Errorf("%s: %s is %q (%v), want %q", unit, property, got, err, want)
	}
}

// mgmt's svc1 writes /tmp/mgmt/f1 and then starts and enables the service
// purpleidea: graft runs as root next to a real systemd that is PID 1
// (booted on a private root), and takes its production path to it, the
// private socket.
func TestMgmtExampleSvc1StartsAndEnablesPurpleidea(t *testing.T) {
	s := bootedSystemd(t)
	if err := os.WriteFile(filepath.Join(s.UnitDir, "purpleidea.service"), []byte(purpleideaUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantUnit(t, s, "purpleidea.service", "ActiveState", "inactive")
	wantUnit(t, s, "purpleidea.service", "UnitFileState", "disabled")

	runInSystemd(t, s, mgmtExample(t, "pre-yaml/svc1.yaml"), "svc1.yaml")
	wantUnit(t, s, "purpleidea.service", "ActiveState", "active")
	wantUnit(t, s, "purpleidea.service", "UnitFileState", "enabled")
	wantFile(t, s.Path("/tmp/mgmt/f1"), "i am f1\n")
}

// mgmt's svc2 starts purpleidea in the user's service manager (session:
// true): root's, next to the booted systemd, whose own manager has no
// purpleidea.
func TestMgmtExampleSvc2StartsPurpleideaInTheUserManager(t *testing.T) {
	s := bootedSystemd(t)
	u := s.User(t)
	if err := os.WriteFile(filepath.Join(u.UnitDir, "purpleidea.service"), []byte(purpleideaUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantUnit(t, u, "purpleidea.service", "ActiveState", "inactive")

	runInSystemd(t, s, mgmtExample(t, "pre-yaml/svc2.yaml"), "svc2.yaml", "XDG_RUNTIME_DIR=/run/user/0")
	wantUnit(t, u, "purpleidea.service", "ActiveState", "active")
	wantUnit(t, s, "purpleidea.service", "LoadState", "not-found")
}
