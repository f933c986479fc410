package resources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
)

// ErrNoPackageManager is wrapped by the error of a pkg resource on a host
// where graft finds no package manager it can drive.
var ErrNoPackageManager = errors.New("no supported package manager (need dpkg/apt or rpm/dnf)")

// pkgStatus is what the package database says about one package.
type pkgStatus struct {
	// installed is the installed version, "" if the package is not
	// installed (removed with its configuration left counts as not
	// installed).
	installed string
	// candidate is the version the package manager would install, ""
	// if its lists know no such package.
	candidate string
}

// pkgTx is one package transaction: what to install (as "name" or
// "name=version") and what to remove.
type pkgTx struct {
	install []string
	remove  []string
	// untrusted allows packages that cannot be authenticated;
	// downgrade allows installing a version older than the installed one.
	untrusted, downgrade bool
}

// pkgBackend drives one family of package managers.
type pkgBackend interface {
	// validName checks a package name against the backend's rules, and
	// validVersion a version; both must refuse anything a command could
	// take for an option.
	validName(name string) error
	validVersion(version string) error
	// installed reports the installed version of each named package that
	// is installed.
	installed(ctx context.Context, names []string) (map[string]string, error)
	// candidates reports the version the package manager would install
	// for each named package its lists know.
	candidates(ctx context.Context, names []string) (map[string]string, error)
	// refresh updates the package lists from the configured sources.
	refresh(ctx context.Context, log *slog.Logger) error
	// apply runs the transaction: one command for the installs, one for
	// the removals.
	apply(ctx context.Context, tx pkgTx, log *slog.Logger) error
	// dbPath is the file that changes whenever a package is installed or
	// removed.
	dbPath() string
	// ownedPaths lists the paths an installed package owns; nil if it is
	// not installed or owns more than maxOwnedPaths.
	ownedPaths(name string) ([]string, error)
}

// maxOwnedPaths bounds the paths read for one package's automatic edges.
const maxOwnedPaths = 20000

// pkgNameSafe is what every backend's names must match at least: no
// leading '-' (an option), no whitespace, '/', '=' or shell syntax.
var pkgNameSafe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// pkgVersionSafe is what a version must match: it starts with a digit
// (for Debian and RPM alike) and holds no whitespace, '/' or '='.
var pkgVersionSafe = regexp.MustCompile(`^[0-9][A-Za-z0-9._+~:^-]*$`)

// hostHas reports whether every program is in the agent's PATH.
func hostHas(progs ...string) bool {
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			return false
		}
	}
	return true
}

// detectBackend chooses the backend by what the host has: dpkg and apt
// when dpkg's status file exists and apt-get, apt-cache and dpkg-query are
// in PATH; else rpm and dnf when both are in PATH.
func detectBackend() (pkgBackend, error) { return pickBackend("/var/lib/dpkg", "/") }

// pickBackend is detectBackend with dpkg's database directory and the root
// rpm and dnf install under.
func pickBackend(dpkgAdmin, root string) (pkgBackend, error) {
	_, statusErr := os.Stat(filepath.Join(dpkgAdmin, "status"))
	switch {
	case statusErr == nil && hostHas("dpkg-query", "apt-get", "apt-cache"):
		return &aptBackend{admin: dpkgAdmin}, nil
	case hostHas("rpm", "dnf"):
		return newRPMBackend(root)
	}
	return nil, fmt.Errorf("%w: found neither %s with apt-get, apt-cache and dpkg-query, nor rpm with dnf, in PATH",
		ErrNoPackageManager, filepath.Join(dpkgAdmin, "status"))
}
