package resources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// rpmBackend drives rpm and dnf (Fedora, RHEL and their relatives): rpm
// reads the installed state and the files a package owns, dnf reads the
// candidates from its metadata cache and makes every change. Every command
// gets an argument list, never a shell, and the agent's environment with
// LC_ALL=C, so the output graft reads is not translated.
type rpmBackend struct {
	// root is the directory packages are installed under: "/" for the
	// host. Any other root is passed to every command (rpm --root, dnf
	// --installroot), and dnf then reads its configuration, repositories
	// and cache from inside it; the tests use a temporary one.
	root string
	// db is the file of rpm's database that every transaction writes.
	db string
}

// rpmQueryTimeout bounds the queries that get no context from the engine.
const rpmQueryTimeout = time.Minute

// rpmName is what rpm and dnf take for a package name and nothing else:
// letters, digits, '.', '_', '+' and '-' (no glob, path, group or rich
// dependency syntax), starting with a letter or digit.
var rpmName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// rpmVersion is "[epoch:]version-release" as rpm writes it: an epoch of 0
// is left out, and version and release hold no '-'.
var rpmVersion = regexp.MustCompile(`^([1-9][0-9]*:)?[A-Za-z0-9][A-Za-z0-9._+~^]*-[A-Za-z0-9._+~^]+$`)

// newRPMBackend asks rpm where its database lives under root.
func newRPMBackend(root string) (*rpmBackend, error) {
	b := &rpmBackend{root: root}
	ctx, cancel := context.WithTimeout(context.Background(), rpmQueryTimeout)
	defer cancel()
	out, err := queryCmd(ctx, nil, "rpm", b.rpmArgs("--eval", "%{_dbpath}", "--eval", "%{_db_backend}")...)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "/") {
		return nil, fmt.Errorf("rpm: cannot tell its database directory from %q", out)
	}
	b.db = rpmDBFile(filepath.Join(root, lines[0]), lines[1])
	return b, nil
}

// rpmDBFile picks the file of rpm's database in dir that every
// transaction writes: the one of the configured backend if it exists, else
// the first of the others that does (rpm uses an existing database of
// another backend), else the configured one. rpm before 4.16 has no
// backend macro and only Berkeley DB. rpm's sqlite database is in WAL
// mode, but rpm checkpoints into rpmdb.sqlite at the end of each
// transaction (waiting for readers if need be), so the main file is the
// one to watch.
func rpmDBFile(dir, backend string) string {
	name := "Packages" // bdb, bdb_ro, and rpm before 4.16
	switch backend {
	case "sqlite":
		name = "rpmdb.sqlite"
	case "ndb":
		name = "Packages.db"
	}
	for _, n := range []string{name, "rpmdb.sqlite", "Packages.db", "Packages"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return filepath.Join(dir, n)
		}
	}
	return filepath.Join(dir, name)
}

func (b *rpmBackend) rpmArgs(args ...string) []string {
	if b.root == "/" {
		return args
	}
	return append([]string{"--root", b.root}, args...)
}

func (b *rpmBackend) dnfArgs(args ...string) []string {
	if b.root == "/" {
		return args
	}
	return append([]string{"--installroot", b.root}, args...)
}

func (b *rpmBackend) validName(name string) error {
	if !rpmName.MatchString(name) {
		return fmt.Errorf("%q is not an RPM package name (letters, digits, '.', '_', '+' and '-', "+
			"starting with a letter or digit)", name)
	}
	if strings.HasSuffix(name, ".rpm") {
		return fmt.Errorf("%q names a package file, which dnf would install from the path; name the package", name)
	}
	return nil
}

func (b *rpmBackend) validVersion(v string) error {
	if !rpmVersion.MatchString(v) {
		return fmt.Errorf("%q is not an RPM version: want [epoch:]version-release as rpm -q shows it, "+
			"such as 1.2-3.fc40 or 2:1.2-3.el9 (an epoch of 0 is left out)", v)
	}
	return nil
}

func (b *rpmBackend) dbPath() string { return b.db }

func rpmEnv() []string { return append(os.Environ(), "LC_ALL=C") }

// rpmQuery runs a read-only command and returns its standard output and
// error and its exit status, also when that is not 0 (rpm -q counts the
// packages it did not find in it); err says only that it did not run to
// its end. A cancelled ctx kills it: it changes nothing.
func rpmQuery(ctx context.Context, prog string, args ...string) (stdout, stderr []byte, status int, err error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = rpmEnv()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		status, err = exit.ExitCode(), nil
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", prog, err)
	}
	return o.Bytes(), e.Bytes(), status, nil
}

// installed asks rpm for the installed version of each package; of a
// package installed in several versions (kernels) it reports the newest.
func (b *rpmBackend) installed(ctx context.Context, names []string) (map[string]string, error) {
	out, stderr, _, err := rpmQuery(ctx, "rpm", b.rpmArgs(append([]string{"-q", "--qf",
		"%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\n", "--"}, names...)...)...)
	if err != nil {
		return nil, err
	}
	best := make(map[string]rpmEVR, len(names))
	answered := make(map[string]bool, len(names))
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		if name, ok := strings.CutPrefix(line, "package "); ok {
			if name, ok = strings.CutSuffix(name, " is not installed"); ok {
				answered[name] = true
			}
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			continue
		}
		evr := parseEVR(f[1] + ":" + f[2] + "-" + f[3])
		if cur, ok := best[f[0]]; !ok || compareEVR(evr, cur) > 0 {
			best[f[0]] = evr
		}
		answered[f[0]] = true
	}
	for _, n := range names {
		if !answered[n] {
			return nil, fmt.Errorf("rpm -q says nothing of %s: %s", n, strings.TrimSpace(string(stderr)))
		}
	}
	versions := make(map[string]string, len(best))
	for n, evr := range best {
		versions[n] = evr.String()
	}
	return versions, nil
}

// candidates asks dnf's metadata cache, as the last refresh left it (dnf
// --cacheonly: a query never downloads), for the newest version of each
// package; a repository without a cache is skipped, so that a package
// only it has counts as unknown until a refresh. An installed version
// newer than any the repositories offer is the candidate: dnf would not
// move away from it.
func (b *rpmBackend) candidates(ctx context.Context, names []string) (map[string]string, error) {
	inst, err := b.installed(ctx, names)
	if err != nil {
		return nil, err
	}
	out, stderr, status, err := rpmQuery(ctx, "dnf", b.dnfArgs(append([]string{"-q", "--cacheonly",
		"--setopt=skip_if_unavailable=True", "repoquery", "--latest-limit", "1",
		"--qf", "%{name}\t%{epoch}\t%{version}\t%{release}\t%{arch}\n", "--"}, names...)...)...)
	if err != nil {
		return nil, err
	}
	if status != 0 {
		return nil, fmt.Errorf("dnf repoquery: exit status %d: %s", status, strings.TrimSpace(string(stderr)))
	}
	best := make(map[string]rpmEVR, len(names))
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 5 || !slices.Contains(names, f[0]) || f[4] == "src" || f[4] == "nosrc" {
			continue
		}
		evr := parseEVR(f[1] + ":" + f[2] + "-" + f[3])
		if cur, ok := best[f[0]]; !ok || compareEVR(evr, cur) > 0 {
			best[f[0]] = evr
		}
	}
	versions := make(map[string]string, len(best))
	for n, evr := range best {
		versions[n] = evr.String()
		if v, ok := inst[n]; ok && compareEVR(parseEVR(v), evr) >= 0 {
			versions[n] = v
		}
	}
	return versions, nil
}

// runDnf runs dnf with args. Once started it runs to the end even if ctx
// is cancelled: killing rpm halfway through a transaction leaves the
// database and the files out of step. A cancelled ctx stops it from
// starting.
func runDnf(ctx context.Context, log *slog.Logger, args ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dnf not started: %w", context.Cause(ctx))
	}
	log.Debug("running", "cmd", "dnf", "args", args)
	cmd := exec.Command("dnf", args...)
	cmd.Env = rpmEnv()
	out := newTailBuffer(maxOutput)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dnf %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out.Bytes())))
	}
	return nil
}

// refresh downloads the metadata of every enabled repository anew, as
// apt-get update does, whether or not dnf thinks its cache expired.
func (b *rpmBackend) refresh(ctx context.Context, log *slog.Logger) error {
	log.Info("refreshing package lists", "cmd", "dnf makecache --refresh")
	return runDnf(ctx, log, b.dnfArgs("-y", "--refresh", "makecache")...)
}

// apply runs one dnf install for every install, upgrade and pinned version,
// and one dnf remove for the removals.
func (b *rpmBackend) apply(ctx context.Context, tx pkgTx, log *slog.Logger) error {
	if len(tx.install) > 0 {
		specs, err := b.installSpecs(ctx, tx)
		if err != nil {
			return err
		}
		args := []string{"-y"}
		if tx.untrusted {
			args = append(args, "--nogpgcheck")
		}
		log.Info("installing", "packages", strings.Join(specs, " "))
		if err := runDnf(ctx, log, b.dnfArgs(append(append(args, "install", "--"), specs...)...)...); err != nil {
			return err
		}
	}
	if len(tx.remove) == 0 {
		return nil
	}
	if err := b.checkRemoval(ctx, tx.remove); err != nil {
		return err
	}
	log.Info("removing", "packages", strings.Join(tx.remove, " "))
	// Like apt-get remove, and unlike dnf's default, leave the packages
	// that were installed only as dependencies of the removed ones.
	return runDnf(ctx, log, b.dnfArgs(append([]string{"-y", "--setopt=clean_requirements_on_remove=False",
		"remove", "--"}, tx.remove...)...)...)
}

// installSpecs turns the transaction's installs into what dnf install
// takes. "name=version" becomes "name-version", refused if it would
// downgrade the installed package without tx.downgrade (dnf install would
// downgrade without a word). A bare name of an installed package (state
// newest) becomes "name-candidate": dnf install leaves an installed
// package alone, so the version makes it an upgrade in the same run.
func (b *rpmBackend) installSpecs(ctx context.Context, tx pkgTx) ([]string, error) {
	names := make([]string, len(tx.install))
	for i, s := range tx.install {
		names[i], _, _ = strings.Cut(s, "=")
	}
	inst, err := b.installed(ctx, names)
	if err != nil {
		return nil, err
	}
	var upgrade, downgrade []string
	specs := make([]string, len(tx.install))
	for i, s := range tx.install {
		name, version, pinned := strings.Cut(s, "=")
		cur, isInst := inst[name]
		switch {
		case pinned:
			if isInst && !tx.downgrade && compareEVR(parseEVR(cur), parseEVR(version)) > 0 {
				downgrade = append(downgrade, fmt.Sprintf("%s from %s to %s", name, cur, version))
			}
			specs[i] = name + "-" + version
		case isInst:
			upgrade = append(upgrade, name)
		default:
			specs[i] = name
		}
	}
	if len(downgrade) > 0 {
		return nil, fmt.Errorf("installing would downgrade %s; allowdowngrade permits it", strings.Join(downgrade, ", "))
	}
	if len(upgrade) > 0 {
		cands, err := b.candidates(ctx, upgrade)
		if err != nil {
			return nil, err
		}
		for i, s := range tx.install {
			if specs[i] != "" {
				continue
			}
			if cands[s] == "" {
				return nil, fmt.Errorf("%w: %s", ErrNoSuchPackage, s)
			}
			specs[i] = s + "-" + cands[s]
		}
	}
	return specs, nil
}

// checkRemoval refuses a removal that would take other packages with it
// (those that depend on the ones to remove): dnf remove would remove them
// too, and the graph did not ask for it. rpm -e --test reports them and
// changes nothing.
func (b *rpmBackend) checkRemoval(ctx context.Context, names []string) error {
	out, stderr, status, err := rpmQuery(ctx, "rpm", b.rpmArgs(append([]string{"-e", "--test", "--"}, names...)...)...)
	if err != nil {
		return err
	}
	var extra []string
	for line := range strings.Lines(string(stderr) + string(out)) {
		_, nevra, ok := strings.Cut(strings.TrimSpace(line), " is needed by (installed) ")
		if !ok {
			continue
		}
		if name := nevraName(nevra); !slices.Contains(names, name) && !slices.Contains(extra, name) {
			extra = append(extra, name)
		}
	}
	switch {
	case len(extra) > 0:
		return fmt.Errorf("removing %s would also remove %s, which depend on it; declare those uninstalled too",
			strings.Join(names, " "), strings.Join(extra, " "))
	case status != 0:
		return fmt.Errorf("rpm -e --test %s: exit status %d: %s", strings.Join(names, " "), status, strings.TrimSpace(string(stderr)))
	}
	return nil
}

// nevraName is the name in rpm's name-[epoch:]version-release.arch:
// version and release hold no '-'.
func nevraName(nevra string) string {
	if i := strings.LastIndexByte(nevra, '.'); i > 0 {
		nevra = nevra[:i]
	}
	for range 2 {
		if i := strings.LastIndexByte(nevra, '-'); i > 0 {
			nevra = nevra[:i]
		}
	}
	return nevra
}

// ownedPaths asks rpm for the files and directories the package owns, as
// paths on the managed root (without b.root).
func (b *rpmBackend) ownedPaths(name string) ([]string, error) {
	if b.validName(name) != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpmQueryTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rpm", b.rpmArgs("-q", "--qf", "[%{FILENAMES}\n]", "--", name)...)
	cmd.Env = rpmEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	var paths []string
	tooMany := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if p := sc.Text(); strings.HasPrefix(p, "/") {
			if tooMany = len(paths) == maxOwnedPaths; tooMany {
				break
			}
			paths = append(paths, p)
		}
	}
	scanErr := sc.Err()
	cancel()       // stops rpm if it is still listing
	_ = cmd.Wait() // a package that is not installed exits 1 and lists nothing
	if tooMany {
		return nil, nil
	}
	return paths, scanErr
}
