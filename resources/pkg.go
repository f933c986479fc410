package resources

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// Package states; any other state is a version.
const (
	pkgInstalled   = "installed"
	pkgUninstalled = "uninstalled"
	pkgNewest      = "newest"
)

// ErrNoSuchPackage is wrapped by the error of a pkg resource whose package
// the package manager does not know, even after refreshing its lists.
var ErrNoSuchPackage = errors.New("no such package in the package lists")

// Pkg keeps a package installed, uninstalled, at the newest version or at a
// given version, through the host's package manager: dpkg and apt on
// Debian and Ubuntu, rpm and dnf on Fedora and RHEL. The resource name is
// the package name.
type Pkg struct {
	// State is "installed" (the default: any version will do),
	// "uninstalled", "newest" (the candidate version of the package
	// lists) or a version to hold the package at.
	State string `yaml:"state"`
	// AllowDowngrade lets a version state install a version older than
	// the installed one; without it graft refuses to downgrade.
	AllowDowngrade bool `yaml:"allowdowngrade"`
	// AllowUntrusted installs packages that cannot be authenticated
	// (apt-get --allow-unauthenticated, dnf --nogpgcheck); without it the
	// package manager refuses them.
	AllowUntrusted bool `yaml:"allowuntrusted"`
	// AllowNonFree and AllowUnsupported are mgmt's PackageKit search
	// filters. Neither apt nor dnf has such filters (what they may
	// install is what the configured sources offer), so they are accepted
	// and ignored with a warning.
	AllowNonFree     bool `yaml:"allownonfree"`
	AllowUnsupported bool `yaml:"allowunsupported"`

	name  string
	hub   *fswatch.Hub
	rt    *engine.Runtime
	be    pkgBackend
	lists pkgListsState
}

func newPkg(name string, hub *fswatch.Hub) *Pkg {
	return &Pkg{name: name, State: pkgInstalled, hub: hub}
}

func (p *Pkg) isVersion() bool {
	switch p.State {
	case pkgInstalled, pkgUninstalled, pkgNewest:
		return false
	}
	return true
}

// Validate checks the name and state without asking the host: what every
// package manager accepts. Init checks them against the host's.
func (p *Pkg) Validate() error {
	if strings.HasPrefix(p.name, "/") {
		return engine.ParamErrorf("name", "%q is a path: installing a package file is not supported; "+
			"publish it in a repository the package manager knows and name the package", p.name)
	}
	if !pkgNameSafe.MatchString(p.name) {
		return engine.ParamErrorf("name", "%q is not a package name (letters, digits, '.', '_', '+', '-', starting with a letter or digit)", p.name)
	}
	switch {
	case p.State == "":
		return engine.ParamErrorf("state", "empty; want installed, uninstalled, newest or a version")
	case p.State == "latest":
		return engine.ParamErrorf("state", `"latest" is not a state; did you mean newest?`)
	case p.isVersion() && !pkgVersionSafe.MatchString(p.State):
		return engine.ParamErrorf("state", "%q is not installed, uninstalled, newest or a version (a version starts with a digit)", p.State)
	}
	return nil
}

// IgnoredParams names the parameters graft accepts, as mgmt does, but
// cannot honour here, each with the reason; the graph loader warns about
// those a graph sets.
func (p *Pkg) IgnoredParams() map[string]string {
	ignored := map[string]string{
		"allownonfree": "apt and dnf have no free-software filter: they install what the configured sources " +
			"(apt's main, contrib and non-free components, dnf's repositories) offer",
		"allowunsupported": "apt and dnf have no notion of supported packages: they install what the configured sources offer",
	}
	if !p.isVersion() {
		ignored["allowdowngrade"] = "only a version state can downgrade a package"
	}
	return ignored
}

// Init chooses the host's package manager (unless a test chose one) and
// checks the name and version against its rules.
func (p *Pkg) Init(rt *engine.Runtime) error {
	p.rt = rt
	be := p.be
	if be == nil {
		var err error
		if be, err = detectBackend(); err != nil {
			return err
		}
	}
	if err := be.validName(p.name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if p.isVersion() {
		if err := be.validVersion(p.State); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	p.be = be
	return nil
}

// Cleanup does nothing.
func (p *Pkg) Cleanup() error { return nil }

// Watch reports every change of the package database, whoever makes it:
// dpkg replaces its status file (by rename) at each step of every install
// or removal, and rpm writes its database file at the end of each
// transaction. Unless the state is uninstalled it also reports a refresh
// of the package lists (apt-get update, by anyone), once, after the
// refresh ends, where the backend knows where its lists are.
func (p *Pkg) Watch(ctx context.Context) error {
	if p.hub == nil {
		return errors.New("pkg: no file watcher configured")
	}
	cancel, err := p.hub.Watch(p.be.dbPath(), p.rt.Event)
	if err != nil {
		return err
	}
	defer cancel()
	lists, refreshing, cancelLists, err := p.watchLists(ctx)
	if err != nil {
		return err
	}
	defer cancelLists()
	p.rt.Running()
	afterRefreshes(ctx, lists, refreshing, listsQuiet, p.listsEvent)
	return nil
}

// CheckApply brings the package to its state.
func (p *Pkg) CheckApply(ctx context.Context, apply bool) (bool, error) {
	return p.checkApply(ctx, apply, []*Pkg{p})
}

// CheckApplyGroup brings every package of an automatic group to its state
// in one transaction: one apt-get (or dnf) run for the installs, one for
// the removals.
func (p *Pkg) CheckApplyGroup(ctx context.Context, apply bool, members []engine.Res) (bool, error) {
	pkgs := make([]*Pkg, 0, len(members))
	for _, m := range members {
		mp, ok := m.(*Pkg)
		if !ok {
			return false, fmt.Errorf("pkg group holds a %T", m)
		}
		pkgs = append(pkgs, mp)
	}
	return p.checkApply(ctx, apply, pkgs)
}

// GroupKey groups the pkg resources whose transaction options agree.
func (p *Pkg) GroupKey() string {
	return fmt.Sprintf("pkg untrusted=%t downgrade=%t", p.AllowUntrusted, p.AllowDowngrade && p.isVersion())
}

func (p *Pkg) checkApply(ctx context.Context, apply bool, pkgs []*Pkg) (bool, error) {
	lists := p.listsPrint()
	defer func() { listsChecked(pkgs, lists) }()
	st, err := p.status(ctx, pkgs)
	if err != nil {
		return false, err
	}
	tx, missing := planPkgs(st, pkgs)
	if len(missing) > 0 && apply {
		// A host's lists may be stale or never fetched: refresh them once
		// before deciding that a package does not exist.
		err := p.be.refresh(ctx, p.rt.Logger)
		lists = p.listsPrint() // the check's own refresh is no news to it
		if err != nil {
			return false, err
		}
		if st, err = p.status(ctx, pkgs); err != nil {
			return false, err
		}
		tx, missing = planPkgs(st, pkgs)
		if len(missing) > 0 {
			return false, fmt.Errorf("%w: %s", ErrNoSuchPackage, strings.Join(missing, " "))
		}
	}
	if len(tx.install) == 0 && len(tx.remove) == 0 && len(missing) == 0 {
		return true, nil
	}
	if !apply {
		p.rt.Logger.Info("would change", "install", strings.Join(tx.install, " "),
			"remove", strings.Join(tx.remove, " "), "unknown", strings.Join(missing, " "))
		return false, nil
	}
	return false, p.be.apply(ctx, tx, p.rt.Logger)
}

// status asks the package database for the installed version of each
// package, and the lists for the candidate version of those that may have
// to be installed: a package in its state costs one dpkg-query.
func (p *Pkg) status(ctx context.Context, pkgs []*Pkg) (map[string]pkgStatus, error) {
	names := make([]string, len(pkgs))
	for i, m := range pkgs {
		names[i] = m.name
	}
	inst, err := p.be.installed(ctx, names)
	if err != nil {
		return nil, err
	}
	var need []string
	for _, m := range pkgs {
		v := inst[m.name]
		switch {
		case m.State == pkgUninstalled, m.State == pkgInstalled && v != "", m.isVersion() && v == m.State:
		default:
			need = append(need, m.name)
		}
	}
	var cands map[string]string
	if len(need) > 0 {
		if cands, err = p.be.candidates(ctx, need); err != nil {
			return nil, err
		}
	}
	st := make(map[string]pkgStatus, len(pkgs))
	for _, m := range pkgs {
		st[m.name] = pkgStatus{installed: inst[m.name], candidate: cands[m.name]}
	}
	return st, nil
}

// planPkgs works out the transaction that brings pkgs to their states, and
// which packages it would have to install that the lists do not know.
func planPkgs(st map[string]pkgStatus, pkgs []*Pkg) (tx pkgTx, missing []string) {
	for _, m := range pkgs {
		s := st[m.name]
		tx.untrusted = tx.untrusted || m.AllowUntrusted
		want := ""
		switch {
		case m.State == pkgUninstalled:
			if s.installed != "" {
				tx.remove = append(tx.remove, m.name)
			}
			continue
		case m.State == pkgInstalled:
			if s.installed == "" {
				want = m.name
			}
		case m.State == pkgNewest:
			if s.installed == "" || (s.candidate != "" && s.candidate != s.installed) {
				want = m.name
			}
		case s.installed != m.State:
			want = m.name + "=" + m.State
			tx.downgrade = tx.downgrade || m.AllowDowngrade
		}
		switch {
		case want == "":
		case s.candidate == "":
			missing = append(missing, m.name)
		default:
			tx.install = append(tx.install, want)
		}
	}
	return tx, missing
}

// Provides names what the installed package owns, for automatic edges, as
// dpkg's file list says at graph load: "path:" and each path of the package
// that has nothing of the package below it (its files, and the directories
// it ships empty; not the directories it shares with every other package,
// such as /usr/share), and "svc:" and the name of each systemd unit it
// ships. A package that is not installed, or is to be uninstalled,
// provides nothing.
func (p *Pkg) Provides() []string {
	if p.State == pkgUninstalled {
		return nil
	}
	be := p.be
	if be == nil {
		var err error
		if be, err = detectBackend(); err != nil {
			return nil
		}
	}
	paths, err := be.ownedPaths(p.name)
	if err != nil || len(paths) == 0 {
		return nil
	}
	parents := make(map[string]bool, len(paths))
	for _, q := range paths {
		parents[path.Dir(q)] = true
	}
	var uids []string
	for _, q := range paths {
		if parents[q] {
			continue
		}
		self, _ := engine.PathUIDs(q)
		uids = append(uids, self)
		if unit, ok := systemdUnit(q); ok {
			uids = append(uids, "svc:"+unit)
		}
	}
	return uids
}

// systemdUnit reports the service name of a unit file in systemd's
// package unit directories, without ".service", as svc resources name it.
func systemdUnit(p string) (string, bool) {
	dir, base := path.Split(p)
	switch dir {
	case "/lib/systemd/system/", "/usr/lib/systemd/system/":
	default:
		return "", false
	}
	name, ok := strings.CutSuffix(base, ".service")
	return name, ok && name != ""
}
