package resources

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
)

// With apply off the resource only says what it would install; with apply
// on it installs, and then finds nothing to do.
func TestPkgInstallsAndNoopOnlyReports(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "inst")
	r.add(name, "1.0", "", nil)
	r.update()

	logs := &syncBuffer{}
	p := newPkg(name, nil)
	newTestPkg(t, p, logs)
	converge(t, p, false, false)
	if v := installedVersion(t, name); v != "" {
		t.Fatalf("noop installed %s %s", name, v)
	}
	if !strings.Contains(logs.String(), "would change") || !strings.Contains(logs.String(), "install="+name) {
		t.Errorf("noop logs %q, want a would-change line naming %s", logs.String(), name)
	}
	converge(t, p, true, false)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("after apply %s is at %q, want 1.0", name, v)
	}
	if b, err := os.ReadFile(filepath.Join("/usr/share", name, "version")); err != nil || string(b) != "1.0\n" {
		t.Errorf("the package's file holds %q (%v)", b, err)
	}
	converge(t, p, true, true)
	converge(t, p, false, true)
}

// A package the lists do not know makes the resource refresh them once
// (apt-get update) before it gives up; one that no source has is an error
// that names it.
func TestPkgRefreshesTheListsBeforeCallingAPackageUnknown(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "fresh")
	r.add(name, "1.0", "", nil) // published, but the lists were never fetched
	p := newPkg(name, nil)
	newTestPkg(t, p, nil)
	converge(t, p, true, false)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("%s is at %q, want 1.0", name, v)
	}

	missing := newPkg(name+"-nowhere", nil)
	newTestPkg(t, missing, nil)
	_, err := missing.CheckApply(t.Context(), true)
	if !errors.Is(err, ErrNoSuchPackage) || !strings.Contains(err.Error(), name+"-nowhere") {
		t.Errorf("CheckApply of an unknown package: %v, want ErrNoSuchPackage naming it", err)
	}
}

// A package removed behind graft's back (dpkg -r) is noticed by Watch,
// without polling, and installed again by the engine.
func TestPkgRemovedByDpkgIsReinstalled(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "watch")
	r.add(name, "1.0", "", nil)
	r.update()
	hub := runHub(t)
	g := engine.NewGraph("t")
	addVertex(t, g, "pkg", name, newPkg(name, hub), engine.Meta{})
	runGraph(t, g)
	waitInstalled(t, name, "1.0")
	for range 2 {
		dpkgRemove(t, name)
		waitInstalled(t, name, "1.0")
	}
}

// State uninstalled removes an installed package (apply), or says it
// would (noop).
func TestPkgUninstalledRemoves(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "rm")
	r.add(name, "1.0", "", nil)
	r.update()
	r.install(name)

	p := newPkg(name, nil)
	p.State = pkgUninstalled
	newTestPkg(t, p, nil)
	converge(t, p, false, false)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("noop changed %s to %q", name, v)
	}
	converge(t, p, true, false)
	if v := installedVersion(t, name); v != "" {
		t.Fatalf("%s is still installed (%s)", name, v)
	}
	converge(t, p, true, true)
}

// Removing a package that others depend on would make apt remove them
// too; graft refuses, naming them, and removes nothing.
func TestPkgRefusesARemovalThatTakesDependents(t *testing.T) {
	r := newAptRepo(t)
	base := testPkgName(t, "base")
	user := testPkgName(t, "user") // purged before base: cleanups run last first
	r.add(base, "1.0", "", nil)
	r.add(user, "1.0", base, nil)
	r.update()
	r.install(user)

	p := newPkg(base, nil)
	p.State = pkgUninstalled
	newTestPkg(t, p, nil)
	_, err := p.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), user) {
		t.Fatalf("CheckApply: %v, want a refusal naming %s", err, user)
	}
	if installedVersion(t, base) == "" || installedVersion(t, user) == "" {
		t.Error("a refused removal removed something")
	}
}

// A version state installs that version even when the lists offer a newer
// one, moves up to another, and goes down only with allowdowngrade.
func TestPkgVersionStateHoldsThatVersion(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "pin")
	r.add(name, "1.0", "", nil)
	r.add(name, "2.0", "", nil)
	r.update()

	pin := func(version string, downgrade bool) *Pkg {
		p := newPkg(name, nil)
		p.State, p.AllowDowngrade = version, downgrade
		newTestPkg(t, p, nil)
		return p
	}
	p1 := pin("1.0", false)
	converge(t, p1, true, false)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("%s is at %q, want 1.0", name, v)
	}
	converge(t, p1, true, true)
	converge(t, pin("2.0", false), true, false)
	if v := installedVersion(t, name); v != "2.0" {
		t.Fatalf("%s is at %q, want 2.0", name, v)
	}
	if _, err := p1.CheckApply(t.Context(), true); err == nil {
		t.Error("a downgrade without allowdowngrade succeeded")
	}
	if v := installedVersion(t, name); v != "2.0" {
		t.Fatalf("a refused downgrade left %s at %q", name, v)
	}
	converge(t, pin("1.0", true), true, false)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("with allowdowngrade %s is at %q, want 1.0", name, v)
	}
}

// State newest is content with the installed version until the lists
// offer a newer one, then upgrades to it.
func TestPkgNewestUpgradesWhenTheListsOfferMore(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "new")
	r.add(name, "1.0", "", nil)
	r.update()
	p := newPkg(name, nil)
	p.State = pkgNewest
	newTestPkg(t, p, nil)
	converge(t, p, true, false)
	converge(t, p, true, true)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("%s is at %q, want 1.0", name, v)
	}
	r.add(name, "2.0", "", nil)
	r.update()
	converge(t, p, false, false)
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("noop upgraded %s to %q", name, v)
	}
	converge(t, p, true, false)
	if v := installedVersion(t, name); v != "2.0" {
		t.Fatalf("%s is at %q, want 2.0", name, v)
	}
	converge(t, p, true, true)
}

// Names and versions are checked before any command sees them; a host
// without a package manager graft knows is told what is needed.
func TestPkgRefusesBadNamesAndStates(t *testing.T) {
	for _, tc := range []struct{ name, state, want string }{
		{"/tmp/x.deb", pkgInstalled, "is a path"},
		{"-oAPT::x=1", pkgInstalled, "not a package name"},
		{"a b", pkgInstalled, "not a package name"},
		{"cowsay", "", "state: empty"},
		{"cowsay", "latest", "did you mean newest"},
		{"cowsay", "-1.0", "not installed, uninstalled, newest or a version"},
		{"cowsay", "1.0 --force", "not installed, uninstalled, newest or a version"},
	} {
		p := newPkg(tc.name, nil)
		p.State = tc.state
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%q, state %q) = %v, want an error containing %q", tc.name, tc.state, err, tc.want)
		}
	}
	if _, err := exec.LookPath("apt-get"); err == nil {
		p := newPkg("Upper_Case", nil)
		if err := p.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if err := p.Init(&newTestRuntime("pkg", p.name).Runtime); err == nil || !strings.Contains(err.Error(), "not a Debian package name") {
			t.Errorf("Init(%q) on Debian = %v, want a refusal", p.name, err)
		}
	}

	t.Setenv("PATH", t.TempDir())
	p := newPkg("cowsay", nil)
	err := p.Init(&newTestRuntime("pkg", p.name).Runtime)
	if !errors.Is(err, ErrNoPackageManager) || !strings.Contains(err.Error(), "need dpkg/apt or rpm/dnf") {
		t.Errorf("Init without a package manager: %v, want ErrNoPackageManager", err)
	}
}
