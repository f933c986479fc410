package resources

import (
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
)

// The rpm pkg resources of one graph group into one vertex whose
// CheckApply runs one dnf install for every install and upgrade, and one
// dnf remove for the removals.
func TestRPMPkgGroupAppliesInOneDnfTransaction(t *testing.T) {
	r := newRPMRepo(t, false)
	a, b, c := rpmTestName("ga"), rpmTestName("gb"), rpmTestName("gc")
	for _, n := range []string{a, b, c} {
		r.add(n, "1.0", "", nil)
	}
	r.dnf("install", b, c)
	r.add(b, "2.0", "", nil)
	r.refresh()
	log := dnfCallLog(t)

	g := engine.NewGraph("t")
	for name, state := range map[string]string{a: pkgInstalled, b: pkgNewest, c: pkgUninstalled} {
		addVertex(t, g, "pkg", name, r.newPkg(name, state), engine.Meta{})
	}
	grouped := engine.AutoGroup(g)
	if grouped.Len() != 1 {
		t.Fatalf("autogroup left %d vertices, want 1", grouped.Len())
	}
	res := grouped.Vertices()[0].Res
	if err := res.Init(&newTestRuntime("pkg", a).Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, res, true, false)
	if r.version(a) != "1.0-1" || r.version(b) != "2.0-1" || r.version(c) != "" {
		t.Fatalf("after the group's apply: %s=%q %s=%q %s=%q", a, r.version(a), b, r.version(b), c, r.version(c))
	}
	installs, removes := dnfRuns(t, log, "install"), dnfRuns(t, log, "remove")
	if len(installs) != 1 || !strings.HasSuffix(installs[0], "install -- "+a+" "+b+"-2.0-1") {
		t.Errorf("dnf install runs: %q, want one for %s and %s-2.0-1", installs, a, b)
	}
	if len(removes) != 1 || !strings.HasSuffix(removes[0], "remove -- "+c) {
		t.Errorf("dnf remove runs: %q, want one for %s", removes, c)
	}
	converge(t, res, true, true)
}

// A file that an installed package owns, or that lies in a directory the
// package ships empty, depends on the package (rpm -ql); other files do
// not, and nothing depends on a package that is not installed.
func TestRPMPkgOwnedFilesDependOnThePackage(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("edge")
	r.add(name, "1.0", "", map[string]string{
		"/usr/share/" + name + "/conf.d/":              "",
		"/usr/lib/systemd/system/" + name + ".service": "[Service]\nExecStart=/bin/true\n",
	})
	edges := func() []string {
		g := engine.NewGraph("t")
		addVertex(t, g, "pkg", name, r.newPkg(name, pkgInstalled), engine.Meta{})
		for _, p := range []string{"/usr/share/" + name + "/version", "/usr/share/" + name + "/conf.d/local.conf",
			"/usr/share/" + name + "-other/x"} {
			addVertex(t, g, "file", p, &File{name: p}, engine.Meta{})
		}
		engine.AutoEdges(g)
		var out []string
		for _, e := range g.Edges() {
			out = append(out, e.From.String()+" -> "+e.To.String())
		}
		slices.Sort(out)
		return out
	}
	if got := edges(); len(got) != 0 {
		t.Errorf("before the package is installed: edges %q, want none", got)
	}
	r.dnf("install", name)
	want := []string{
		"pkg[" + name + "] -> file[/usr/share/" + name + "/conf.d/local.conf]",
		"pkg[" + name + "] -> file[/usr/share/" + name + "/version]",
	}
	if got := edges(); !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
	if got := r.newPkg(name, pkgInstalled).Provides(); !slices.Contains(got, "svc:"+name) || slices.Contains(got, "path:/usr/share") {
		t.Errorf("Provides() = %q, want svc:%s and not the shared /usr/share", got, name)
	}
}
