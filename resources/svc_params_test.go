package resources

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/gapi/yamlgraph"
)

// Where PID 1 is not systemd, Watch and CheckApply fail saying so and
// naming PID 1, never doing nothing in silence: on a root whose
// /run/systemd/system is missing, and on this host when its PID 1 is not
// systemd (the resource's default, with no hook set).
func TestSvcFailsWherePID1IsNotSystemd(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/1/comm"), []byte("tini\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		sd   svcSystemd
		want string
	}{
		"fake root": {svcSystemd{root: root}, "svc: systemd is not running on this host (PID 1 is tini); the svc resource needs systemd"},
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		comm, err := os.ReadFile("/proc/1/comm")
		if err != nil {
			t.Fatal(err)
		}
		cases["this host"] = struct {
			sd   svcSystemd
			want string
		}{svcSystemd{}, "svc: systemd is not running on this host (PID 1 is " + strings.TrimSpace(string(comm)) + "); the svc resource needs systemd"}
	}
	for what, tc := range cases {
		for _, session := range []bool{false, true} {
			s := &Svc{name: "nginx", State: svcRunning, Session: session, sd: tc.sd}
			rt := newTestRuntime("svc", "nginx")
			if err := s.Init(&rt.Runtime); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CheckApply(t.Context(), true); !errors.Is(err, ErrNoSystemd) || err.Error() != tc.want {
				t.Errorf("%s, session %t: CheckApply: got %v, want %q", what, session, err, tc.want)
			}
			if err := s.Watch(t.Context()); !errors.Is(err, ErrNoSystemd) || err.Error() != tc.want {
				t.Errorf("%s, session %t: Watch: got %v, want %q", what, session, err, tc.want)
			}
			if rt.running.Load() != 0 {
				t.Errorf("%s: Watch reported running", what)
			}
		}
	}
}

// Unit names systemd would refuse, and values of state and startup that
// are not mgmt's, are refused when the graph loads, naming the parameter.
func TestSvcValidateRefusesBadNamesAndValues(t *testing.T) {
	for _, tc := range []struct {
		s    Svc
		want string
	}{
		{Svc{name: "etc/passwd"}, `name: "etc/passwd" is not a unit name: '/'`},
		{Svc{name: "-x"}, `name: "-x" starts with '-'`},
		{Svc{name: "nginx.service"}, `name: "nginx.service": give the unit's name without .service`},
		{Svc{name: "getty@"}, `name: "getty@": a template's unit needs a name before '@' and an instance after it`},
		{Svc{name: "a@b@c"}, `name: "a@b@c" has more than one '@'`},
		{Svc{name: "with space"}, `name: "with space" is not a unit name: ' '`},
		{Svc{name: strings.Repeat("a", 250)}, `name: "` + strings.Repeat("a", 250) + `" is too long`},
		{Svc{name: "nginx", State: "started"}, `state: "started" is not running or stopped`},
		{Svc{name: "nginx", Startup: "on"}, `startup: "on" is not enabled or disabled`},
	} {
		err := tc.s.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error starting %q", tc.s, err, tc.want)
		}
	}
	for _, ok := range []Svc{{name: "nginx"}, {name: "getty@tty1", State: svcRunning, Startup: svcEnabled}, {name: "systemd-journald", State: svcStopped, Startup: svcDisabled}, {name: `dev-disk-by\x2dlabel`, Session: true}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// Bad parameters in a graph file are reported at their line and column.
func TestSvcBadParamsInYAMLAreLocated(t *testing.T) {
	src := "resources:\n  svc:\n  - name: web\n    state: started\n  - name: db\n    startup: yes-please\n  - name: a/b\n"
	_, err := yamlgraph.Parse("svc.yaml", []byte(src), NewRegistry(Deps{}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`svc.yaml:4:5: svc "web": state: "started" is not running or stopped`,
		`svc.yaml:6:5: svc "db": startup: "yes-please" is not enabled or disabled`,
		`svc.yaml:7:5: svc "a/b": name: "a/b" is not a unit name`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// mgmt's way of running a service: a file resource writes the unit, the svc
// runs and enables it. The svc depends on the file without an edge in the
// graph, and on no file that is not its unit's.
func TestSvcDependsOnItsUnitFile(t *testing.T) {
	src := `---
graph: svc
resources:
  file:
  - name: /etc/systemd/system/graft-demo.service
    content: |
      [Service]
      ExecStart=/bin/sleep infinity
  - name: /etc/systemd/system/other.service
    content: "[Service]\n"
  svc:
  - name: graft-demo
    state: running
    startup: enabled
  - name: graft-user-demo
    session: true
edges: []
`
	res := checkAccountsYAML(t, "svc.yaml", src)
	var got []string
	for _, e := range res.Graph.Edges() {
		got = append(got, e.From.String()+" -> "+e.To.String())
	}
	want := []string{"file[/etc/systemd/system/graft-demo.service] -> svc[graft-demo]"}
	if !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
	for _, session := range []bool{false, true} {
		s := &Svc{name: "x", Session: session}
		req := s.Requires()
		for _, dir := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system", "/run/systemd/system"} {
			if slices.Contains(req, "path:"+dir+"/x.service") == session {
				t.Errorf("session %t: Requires %q has %s/x.service: %t", session, req, dir, session)
			}
		}
		if slices.Contains(req, "svc:x") == session {
			t.Errorf("session %t: Requires %q: svc:x there: %t, want %t", session, req, session, !session)
		}
		if session && !slices.Contains(req, "path:/etc/systemd/user/x.service") {
			t.Errorf("session: Requires %q lacks /etc/systemd/user/x.service", req)
		}
	}
	// An instance depends on its template's file and package too.
	req := (&Svc{name: "getty@tty1"}).Requires()
	for _, want := range []string{"svc:getty@tty1", "svc:getty@", "path:/lib/systemd/system/getty@.service", "path:/etc/systemd/system/getty@tty1.service"} {
		if !slices.Contains(req, want) {
			t.Errorf("getty@tty1: Requires %q lacks %s", req, want)
		}
	}
}

// A service depends on the package that ships its unit file.
func TestSvcDependsOnThePackageShippingIt(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "svc")
	r.add(name, "1.0", "", map[string]string{
		"/lib/systemd/system/" + name + ".service": "[Service]\nExecStart=/bin/true\n",
	})
	r.update()
	r.install(name)
	src := "resources:\n  pkg:\n  - name: " + name + "\n  svc:\n  - name: " + name + "\n    state: running\n  - name: " + name + "-other\n"
	res := checkAccountsYAML(t, "pkgsvc.yaml", src)
	var got []string
	for _, e := range res.Graph.Edges() {
		got = append(got, e.From.String()+" -> "+e.To.String())
	}
	want := []string{"pkg[" + name + "] -> svc[" + name + "]"}
	if !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
}
