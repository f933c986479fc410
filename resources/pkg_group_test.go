package resources

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// The pkg resources of one graph group into one vertex whose CheckApply
// runs one apt-get for all installs and one for all removals.
func TestPkgGroupAppliesInOneAptTransaction(t *testing.T) {
	r := newAptRepo(t)
	a, b, c := testPkgName(t, "ga"), testPkgName(t, "gb"), testPkgName(t, "gc")
	for _, n := range []string{a, b, c} {
		r.add(n, "1.0", "", nil)
	}
	r.update()
	r.install(c)
	log := aptCallLog(t)

	g := engine.NewGraph("t")
	for name, state := range map[string]string{a: pkgInstalled, b: pkgNewest, c: pkgUninstalled} {
		p := newPkg(name, nil)
		p.State = state
		addVertex(t, g, "pkg", name, p, engine.Meta{})
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
	if installedVersion(t, a) != "1.0" || installedVersion(t, b) != "1.0" || installedVersion(t, c) != "" {
		t.Fatalf("after the group's apply: %s=%q %s=%q %s=%q", a, installedVersion(t, a), b,
			installedVersion(t, b), c, installedVersion(t, c))
	}
	installs, removes := aptRuns(t, log, "install"), aptRuns(t, log, "remove")
	if len(installs) != 1 || !strings.HasSuffix(installs[0], "install "+a+" "+b) {
		t.Errorf("apt-get install runs: %q, want one for %s and %s", installs, a, b)
	}
	if len(removes) != 1 || !strings.HasSuffix(removes[0], "remove "+c) {
		t.Errorf("apt-get remove runs: %q, want one for %s", removes, c)
	}
	converge(t, res, true, true)
}

// A file that an installed package owns, or that lies in a directory the
// package ships empty, depends on the package; other files do not, and
// nothing depends on a package that is not installed.
func TestPkgOwnedFilesDependOnThePackage(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "edge")
	r.add(name, "1.0", "", map[string]string{
		"/usr/share/" + name + "/conf.d/":          "",
		"/lib/systemd/system/" + name + ".service": "[Service]\nExecStart=/bin/true\n",
	})
	r.update()
	graph := fmt.Sprintf(`resources:
  pkg:
  - name: %[1]s
  file:
  - name: /usr/share/%[1]s/version
    content: "mine\n"
  - name: /usr/share/%[1]s/conf.d/local.conf
    content: "local\n"
  - name: /usr/share/%[1]s-other/x
    content: "x\n"
`, name)
	edges := func() []string {
		res, err := yamlgraph.Parse("edges.yaml", []byte(graph), NewRegistry(Deps{}))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range res.Graph.Edges() {
			out = append(out, e.From.String()+" -> "+e.To.String())
		}
		slices.Sort(out)
		return out
	}
	if got := edges(); len(got) != 0 {
		t.Errorf("before the package is installed: edges %q, want none", got)
	}
	r.install(name)
	want := []string{
		"pkg[" + name + "] -> file[/usr/share/" + name + "/conf.d/local.conf]",
		"pkg[" + name + "] -> file[/usr/share/" + name + "/version]",
	}
	if got := edges(); !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
	if got := newPkg(name, nil).Provides(); !slices.Contains(got, "svc:"+name) || slices.Contains(got, "path:/usr/share") {
		t.Errorf("Provides() = %q, want svc:%s and not the shared /usr/share", got, name)
	}
}

// mgmt's shipped examples that use pkg (examples/yaml/autoedges5.yaml,
// autogroup1.yaml and autogroup2.yaml, and pkg1.yaml and pkg2.yaml from
// before mgmt moved them) load as graft check loads them, and group as
// mgmt groups them.
func TestPkgMgmtExamplesLoadAndGroup(t *testing.T) {
	for _, tc := range []struct {
		file             string
		pkgs, afterGroup int
	}{
		{"autoedges5.yaml", 1, 2},
		{"autogroup1.yaml", 4, 2},
		{"autogroup2.yaml", 3, 1},
		{"pre-yaml/pkg1.yaml", 1, 1},
		{"pre-yaml/pkg2.yaml", 1, 1},
	} {
		res, err := yamlgraph.Parse(tc.file, mgmtExample(t, tc.file), NewRegistry(Deps{}))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		// The loader groups as the engine will: count the members.
		n := 0
		for _, v := range res.Graph.Vertices() {
			if grp, ok := v.Res.(interface{ Members() []engine.ID }); ok {
				n += len(grp.Members())
			} else if v.ID.Kind == "pkg" {
				n++
			}
		}
		if n != tc.pkgs {
			t.Errorf("%s: %d pkg resources, want %d", tc.file, n, tc.pkgs)
		}
		if got := res.Graph.Len(); got != tc.afterGroup {
			t.Errorf("%s: %d vertices after autogrouping, want %d", tc.file, got, tc.afterGroup)
		}
	}
}

// allownonfree and allowunsupported mean nothing to apt, and allowdowngrade
// nothing without a version: the loader accepts them and warns at each.
func TestPkgWarnsAboutParamsAptIgnores(t *testing.T) {
	src := "resources:\n  pkg:\n  - name: cowsay\n    allownonfree: true\n    allowunsupported: false\n" +
		"    allowdowngrade: true\n  - name: sl\n    state: \"1.0\"\n    allowdowngrade: true\n"
	res, err := yamlgraph.Parse("w.yaml", []byte(src), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.String())
	}
	for i, key := range []string{"allownonfree", "allowunsupported", "allowdowngrade"} {
		if len(got) <= i || !strings.Contains(got[i], fmt.Sprintf("w.yaml:%d:", 4+i)) || !strings.Contains(got[i], key) {
			t.Errorf("warnings %q: want one at line %d for %s", got, 4+i, key)
		}
	}
	if len(got) != 3 {
		t.Errorf("warnings %q, want 3 (none for the allowdowngrade of a version)", got)
	}
}
