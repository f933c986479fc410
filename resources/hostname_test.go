package resources

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// hostnameHub runs a file watcher hub until the test ends.
func hostnameHub(t *testing.T) *fswatch.Hub {
	t.Helper()
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return hub
}

// watchHostname runs h's Watch until the test ends and waits until it is
// running.
func watchHostname(t *testing.T, h *Hostname, rt *testRuntime) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	select {
	case <-rt.runningCh:
	case err := <-done:
		t.Fatalf("Watch returned before running: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Watch never called Running")
	}
}

// waitHostnameEvent waits until the resource reports an event.
func waitHostnameEvent(t *testing.T, rt *testRuntime, what string) {
	t.Helper()
	select {
	case <-rt.eventCh:
	case <-time.After(time.Minute):
		t.Fatalf("Watch reported no event after %s", what)
	}
}

func newHostname(t *testing.T, h *Hostname) (*Hostname, *testRuntime) {
	t.Helper()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	rt := newTestRuntime("hostname", "h")
	if err := h.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	return h, rt
}

func kernelName(t *testing.T) string {
	t.Helper()
	n, err := readKernelName()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func prettyName(t *testing.T) string {
	t.Helper()
	n, err := readPrettyName()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runOther runs a command as another process would, failing the test if
// it fails.
func runOther(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// hostname alone sets all three names; noop mode changes nothing; a second
// run finds everything in state.
func TestHostnameSetsStaticTransientAndPrettyNames(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	h, rt := newHostname(t, &Hostname{Hostname: "web-1.example.com"})
	rec := &logRecorder{}
	rt.Logger = slog.New(rec)

	converge(t, h, false, false)
	if n := kernelName(t); n != "sandbox" {
		t.Fatalf("noop mode changed the kernel name to %q", n)
	}
	if _, err := os.Stat(staticNameFile); err == nil {
		t.Fatal("noop mode wrote /etc/hostname")
	}
	if got := len(rec.take()); got != 3 {
		t.Errorf("noop mode logged %d lines, want one per name", got)
	}

	converge(t, h, true, false)
	if got := readFile(t, staticNameFile); got != "web-1.example.com\n" {
		t.Errorf("/etc/hostname holds %q", got)
	}
	if n := kernelName(t); n != "web-1.example.com" {
		t.Errorf("kernel name is %q", n)
	}
	if got := readFile(t, machineInfoFile); got != "PRETTY_HOSTNAME=\"web-1.example.com\"\n" {
		t.Errorf("/etc/machine-info holds %q", got)
	}
	converge(t, h, true, true)
	converge(t, h, false, true)
}

// Each explicit name overrides hostname, and a name that is not managed is
// left alone.
func TestHostnameExplicitNamesOverrideAndUnmanagedAreKept(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	h, _ := newHostname(t, &Hostname{StaticHostname: "db", PrettyHostname: `Bob's "big" $HOME box`})
	converge(t, h, true, false)
	if n := kernelName(t); n != "sandbox" {
		t.Errorf("the unmanaged kernel name changed to %q", n)
	}
	if got := readFile(t, staticNameFile); got != "db\n" {
		t.Errorf("/etc/hostname holds %q", got)
	}
	if got := prettyName(t); got != `Bob's "big" $HOME box` {
		t.Errorf("pretty name reads back as %q", got)
	}
	converge(t, h, true, true)

	h2, _ := newHostname(t, &Hostname{Hostname: "a", TransientHostname: "b"})
	converge(t, h2, true, false)
	if n := kernelName(t); n != "b" {
		t.Errorf("kernel name is %q, want the transient name b", n)
	}
	if got := readFile(t, staticNameFile); got != "a\n" {
		t.Errorf("/etc/hostname holds %q, want hostname a", got)
	}
}

// The pretty name is replaced in /etc/machine-info; the file's other lines
// stay, and so does its mode.
func TestHostnameKeepsTheRestOfMachineInfo(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	const before = "# set by the installer\nICON_NAME=computer-vm\nPRETTY_HOSTNAME='Old name'\nCHASSIS=vm\nPRETTY_HOSTNAME=older"
	if err := os.WriteFile(machineInfoFile, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := prettyName(t); got != "older" {
		t.Fatalf("pretty name reads as %q, want the last assignment", got)
	}
	h, _ := newHostname(t, &Hostname{PrettyHostname: "New name"})
	converge(t, h, true, false)
	const want = "# set by the installer\nICON_NAME=computer-vm\nPRETTY_HOSTNAME=\"New name\"\nCHASSIS=vm\n"
	if got := readFile(t, machineInfoFile); got != want {
		t.Errorf("/etc/machine-info holds %q, want %q", got, want)
	}
	if fi, _ := statT(t, machineInfoFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode is %v, want 0600 kept", fi.Mode().Perm())
	}
	if _, err := os.Stat(staticNameFile); err == nil {
		t.Error("a pretty name alone wrote /etc/hostname")
	}
	converge(t, h, true, true)
}

// Another process changes each name: Watch reports it, and CheckApply puts
// the name back. Each case starts from names already in state, so that no
// event of graft's own writes can stand in for the drift.
func TestHostnameWatchSeesDriftByAnotherProcessAndRepairs(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	hub := hostnameHub(t)
	for _, tc := range []struct {
		name  string
		drift []string
		check func() string
	}{
		{"kernel", []string{"hostname", "intruder"}, func() string { return kernelName(t) }},
		{"static", []string{"sh", "-c", "echo intruder > /etc/hostname"}, func() string { return strings.TrimSpace(readFile(t, staticNameFile)) }},
		{"pretty", []string{"sh", "-c", "echo PRETTY_HOSTNAME=intruder > /etc/machine-info"}, func() string { return prettyName(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed, _ := newHostname(t, &Hostname{Hostname: "keeper"})
			if _, err := seed.CheckApply(t.Context(), true); err != nil {
				t.Fatal(err)
			}

			h, rt := newHostname(t, &Hostname{Hostname: "keeper"})
			h.hub = hub
			watchHostname(t, h, rt)
			converge(t, h, true, true)

			runOther(t, tc.drift[0], tc.drift[1:]...)
			if got := tc.check(); got != "intruder" {
				t.Fatalf("the drift did not happen: %q", got)
			}
			waitHostnameEvent(t, rt, strings.Join(tc.drift, " "))
			converge(t, h, true, false)
			if got := tc.check(); got != "keeper" {
				t.Errorf("after repair the name is %q, want keeper", got)
			}
			converge(t, h, true, true)
		})
	}
}

// Names the kernel or a resolver would refuse are refused when the graph
// loads, naming the parameter they came from.
func TestHostnameValidateRefusesBadNames(t *testing.T) {
	for _, tc := range []struct {
		h    Hostname
		want string
	}{
		{Hostname{}, "hostname: set at least one of"},
		{Hostname{Hostname: "bad name"}, "hostname: \"bad name\" is not a host name"},
		{Hostname{StaticHostname: "-x"}, "static_hostname: \"-x\" is not a host name"},
		{Hostname{TransientHostname: "a..b"}, "transient_hostname: \"a..b\" is not a host name"},
		{Hostname{Hostname: strings.Repeat("a", 65)}, "hostname: \"" + strings.Repeat("a", 65) + "\" is 65 bytes long"},
		{Hostname{PrettyHostname: "two\nlines"}, "pretty_hostname: \"two\\nlines\" is not one line"},
		{Hostname{Hostname: "Ünïcode"}, "hostname: \"Ünïcode\" is not a host name"},
	} {
		err := tc.h.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error starting %q", tc.h, err, tc.want)
		}
	}
	for _, ok := range []Hostname{
		{Hostname: "web-1.example.com"},
		{PrettyHostname: "Bob's laptop ☺"},
		{Hostname: "My laptop", StaticHostname: "a", TransientHostname: "b"},
		{Hostname: strings.Repeat("a", 64)},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// A value written to /etc/machine-info reads back the same.
func TestHostnameMachineInfoQuotingRoundTrips(t *testing.T) {
	for _, s := range []string{"plain", "two words", `Bob's "big" box`, `back\slash $HOME ` + "`cmd`", ""} {
		line := quoteEnvValue(s)
		if got := unquoteEnvValue(line); got != s {
			t.Errorf("%q: quoted %s, read back %q", s, line, got)
		}
	}
	for in, want := range map[string]string{`'a "b" c'`: `a "b" c`, `bare`: "bare", `bare # comment`: "bare", `a\ b`: "a b"} {
		if got := unquoteEnvValue(in); got != want {
			t.Errorf("%s reads as %q, want %q", in, got, want)
		}
	}
}

// In a container /etc/hostname is often a bind mount, which no file can be
// renamed over: the name is then written into it in place, and its mode
// is kept.
func TestHostnameWritesABindMountedHostnameFileInPlace(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	src := "/etc/hostname.outside"
	if err := os.WriteFile(src, []byte("container-id\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(staticNameFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, staticNameFile, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	h, _ := newHostname(t, &Hostname{StaticHostname: "app"})
	converge(t, h, true, false)
	if got := readFile(t, src); got != "app\n" {
		t.Errorf("the mounted file holds %q, want app", got)
	}
	if fi, _ := statT(t, staticNameFile); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
	converge(t, h, true, true)
}

// Two resources managing one name are refused when the graph loads: two
// hostname resources, or a hostname and a file on the name's file. Names
// one does not manage are free for the other.
func TestHostnameClaimsConflictWithFilesAndOtherHostnames(t *testing.T) {
	for _, tc := range []struct {
		name     string
		other    engine.Vertex
		conflict bool
	}{
		{"file on /etc/hostname", engine.Vertex{ID: engine.ID{Kind: "file", Name: "f"}, Res: &File{Path: "/etc/hostname", Content: strptr("x\n")}}, true},
		{"file on /etc/machine-info", engine.Vertex{ID: engine.ID{Kind: "file", Name: "f"}, Res: &File{Path: "/etc/machine-info", Content: strptr("")}}, true},
		{"second hostname, kernel name only", engine.Vertex{ID: engine.ID{Kind: "hostname", Name: "b"}, Res: &Hostname{TransientHostname: "b"}}, true},
		{"file elsewhere in /etc", engine.Vertex{ID: engine.ID{Kind: "file", Name: "f"}, Res: &File{Path: "/etc/hosts", Content: strptr("")}}, false},
	} {
		g := engine.NewGraph("g")
		for _, v := range []engine.Vertex{{ID: engine.ID{Kind: "hostname", Name: "a"}, Res: &Hostname{Hostname: "a"}}, tc.other} {
			if err := g.AddVertex(v); err != nil {
				t.Fatal(err)
			}
		}
		err := g.Validate()
		if got := errors.Is(err, engine.ErrConflict); got != tc.conflict {
			t.Errorf("%s: Validate: %v, want a conflict: %t", tc.name, err, tc.conflict)
		}
	}
	g := engine.NewGraph("g")
	for _, v := range []engine.Vertex{
		{ID: engine.ID{Kind: "hostname", Name: "a"}, Res: &Hostname{StaticHostname: "a"}},
		{ID: engine.ID{Kind: "hostname", Name: "b"}, Res: &Hostname{PrettyHostname: "B"}},
	} {
		if err := g.AddVertex(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Validate(); err != nil {
		t.Errorf("static and pretty names in two resources: %v", err)
	}
}
