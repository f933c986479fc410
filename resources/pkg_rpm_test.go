package resources

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
)

// With apply off the resource only says what it would install; with apply
// on dnf installs it into the root, and then there is nothing to do.
func TestRPMPkgInstallsAndNoopOnlyReports(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("inst")
	r.add(name, "1.0", "", nil)
	r.refresh()

	logs := &syncBuffer{}
	p := r.pkg(name, pkgInstalled, logs)
	converge(t, p, false, false)
	if v := r.version(name); v != "" {
		t.Fatalf("noop installed %s %s", name, v)
	}
	if !strings.Contains(logs.String(), "would change") || !strings.Contains(logs.String(), "install="+name) {
		t.Errorf("noop logs %q, want a would-change line naming %s", logs.String(), name)
	}
	converge(t, p, true, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("after apply %s is at %q, want 1.0-1", name, v)
	}
	if b, err := os.ReadFile(filepath.Join(r.root, "usr/share", name, "version")); err != nil || string(b) != "1.0\n" {
		t.Errorf("the package's file holds %q (%v)", b, err)
	}
	converge(t, p, true, true)
	converge(t, p, false, true)
}

// A package dnf's metadata cache does not know (here: there is no cache
// yet) makes the resource refresh it once (dnf makecache --refresh) before
// it gives up; one that no repository has is an error that names it.
func TestRPMPkgRefreshesTheMetadataBeforeCallingAPackageUnknown(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("fresh")
	r.add(name, "1.0", "", nil) // published, but the metadata was never fetched
	converge(t, r.pkg(name, pkgInstalled, nil), true, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("%s is at %q, want 1.0-1", name, v)
	}

	missing := r.pkg(name+"-nowhere", pkgInstalled, nil)
	_, err := missing.CheckApply(t.Context(), true)
	if !errors.Is(err, ErrNoSuchPackage) || !strings.Contains(err.Error(), name+"-nowhere") {
		t.Errorf("CheckApply of an unknown package: %v, want ErrNoSuchPackage naming it", err)
	}
}

// A package removed behind graft's back (rpm -e) is noticed by Watch on
// rpm's database, without polling, and installed again by the engine.
func TestRPMPkgRemovedByRpmIsReinstalled(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("watch")
	r.add(name, "1.0", "", nil)
	r.refresh()
	hub := runHub(t)
	g := engine.NewGraph("t")
	p := newPkg(name, hub)
	p.be = r.be
	addVertex(t, g, "pkg", name, p, engine.Meta{})
	runGraph(t, g)
	r.waitVersion(name, "1.0-1")
	for range 2 {
		r.erase(name)
		r.waitVersion(name, "1.0-1")
	}
}

// State uninstalled removes an installed package (apply), or says it
// would (noop).
func TestRPMPkgUninstalledRemoves(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("rm")
	r.add(name, "1.0", "", nil)
	r.dnf("install", name)

	p := r.pkg(name, pkgUninstalled, nil)
	converge(t, p, false, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("noop changed %s to %q", name, v)
	}
	converge(t, p, true, false)
	if v := r.version(name); v != "" {
		t.Fatalf("%s is still installed (%s)", name, v)
	}
	converge(t, p, true, true)
}

// Removing a package that others depend on would make dnf remove them
// too; graft refuses, naming them, and removes nothing.
func TestRPMPkgRefusesARemovalThatTakesDependents(t *testing.T) {
	r := newRPMRepo(t, false)
	base, user := rpmTestName("base"), rpmTestName("user")
	r.add(base, "1.0", "", nil)
	r.add(user, "1.0", base, nil)
	r.dnf("install", user)

	_, err := r.pkg(base, pkgUninstalled, nil).CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "also remove "+user) {
		t.Fatalf("CheckApply: %v, want a refusal naming %s", err, user)
	}
	if r.version(base) == "" || r.version(user) == "" {
		t.Error("a refused removal removed something")
	}
}

// A version state installs that version even when the repository offers
// a newer one, moves up to another, and goes down only with
// allowdowngrade (dnf install itself would downgrade without a word).
func TestRPMPkgVersionStateHoldsThatVersion(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("pin")
	r.add(name, "1.0", "", nil)
	r.add(name, "2.0", "", nil)
	r.refresh()

	pin := func(version string, downgrade bool) *Pkg {
		p := r.newPkg(name, version)
		p.AllowDowngrade = downgrade
		newTestPkg(t, p, nil)
		return p
	}
	p1 := pin("1.0-1", false)
	converge(t, p1, true, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("%s is at %q, want 1.0-1", name, v)
	}
	converge(t, p1, true, true)
	converge(t, pin("2.0-1", false), true, false)
	if v := r.version(name); v != "2.0-1" {
		t.Fatalf("%s is at %q, want 2.0-1", name, v)
	}
	if _, err := p1.CheckApply(t.Context(), true); err == nil || !strings.Contains(err.Error(), "allowdowngrade") {
		t.Errorf("a downgrade without allowdowngrade: %v, want a refusal", err)
	}
	if v := r.version(name); v != "2.0-1" {
		t.Fatalf("a refused downgrade left %s at %q", name, v)
	}
	converge(t, pin("1.0-1", true), true, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("with allowdowngrade %s is at %q, want 1.0-1", name, v)
	}
}

// State newest is content with the installed version until the
// repository offers a newer one, then upgrades to it; an installed version
// newer than any the repository still offers stays.
func TestRPMPkgNewestUpgradesWhenTheRepositoryOffersMore(t *testing.T) {
	r := newRPMRepo(t, false)
	name := rpmTestName("new")
	r.add(name, "1.0", "", nil)
	r.refresh()
	p := r.pkg(name, pkgNewest, nil)
	converge(t, p, true, false)
	converge(t, p, true, true)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("%s is at %q, want 1.0-1", name, v)
	}
	r.add(name, "2.0", "", nil)
	r.refresh()
	converge(t, p, false, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("noop upgraded %s to %q", name, v)
	}
	converge(t, p, true, false)
	if v := r.version(name); v != "2.0-1" {
		t.Fatalf("%s is at %q, want 2.0-1", name, v)
	}
	converge(t, p, true, true)

	r.drop(name, "2.0")
	r.refresh()
	converge(t, p, true, true)
	if v := r.version(name); v != "2.0-1" {
		t.Fatalf("with only 1.0 published, newest moved %s to %q", name, v)
	}
}

// allowuntrusted is dnf's --nogpgcheck: a repository that wants signed
// packages gets an unsigned one installed only with it.
func TestRPMPkgUnsignedPackageNeedsAllowUntrusted(t *testing.T) {
	r := newRPMRepo(t, true)
	name := rpmTestName("unsigned")
	r.add(name, "1.0", "", nil)
	r.refresh()
	_, err := r.pkg(name, pkgInstalled, nil).CheckApply(t.Context(), true)
	if err == nil || r.version(name) != "" {
		t.Fatalf("an unsigned package without allowuntrusted: %v, installed %q; want a refusal", err, r.version(name))
	}
	p := r.newPkg(name, pkgInstalled)
	p.AllowUntrusted = true
	newTestPkg(t, p, nil)
	converge(t, p, true, false)
	if v := r.version(name); v != "1.0-1" {
		t.Fatalf("with allowuntrusted %s is at %q, want 1.0-1", name, v)
	}
}
