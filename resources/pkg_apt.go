package resources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// aptBackend drives dpkg and apt: dpkg-query reads the installed state,
// apt-cache the candidates, apt-get changes things. Every command gets an
// argument list, never a shell, and the agent's environment (so APT_CONFIG
// and the like apply) with DEBIAN_FRONTEND=noninteractive and LC_ALL=C, so
// no question is asked and the output graft reads is not translated.
type aptBackend struct {
	// admin is dpkg's database directory.
	admin string
}

// debName is Debian policy's package name: lower-case letters, digits,
// '+', '-' and '.', at least two characters, starting with a letter or
// digit.
var debName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// debVersion is Debian policy's version: [epoch:]upstream[-revision], the
// upstream part starting with a digit.
var debVersion = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$`)

func (b *aptBackend) validName(name string) error {
	if !debName.MatchString(name) {
		return fmt.Errorf("%q is not a Debian package name (lower-case letters, digits, '+', '-' and '.', "+
			"at least two characters, starting with a letter or digit)", name)
	}
	return nil
}

func (b *aptBackend) validVersion(v string) error {
	if !debVersion.MatchString(v) || strings.HasSuffix(v, "-") {
		return fmt.Errorf("%q is not a Debian version ([epoch:]upstream[-revision], starting with a digit)", v)
	}
	return nil
}

func (b *aptBackend) dbPath() string { return filepath.Join(b.admin, "status") }

func aptEnv() []string {
	return append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
}

// queryCmd runs a read-only command and returns its standard output. A
// cancelled ctx kills it: it changes nothing.
func queryCmd(ctx context.Context, okCodes []int, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = aptEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && slices.Contains(okCodes, exit.ExitCode()) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func (b *aptBackend) installed(ctx context.Context, names []string) (map[string]string, error) {
	// Exit code 1 means some names are unknown to dpkg: not installed.
	out, err := queryCmd(ctx, []int{1}, "dpkg-query", append([]string{"--admindir=" + b.admin, "-W",
		"-f=${Package}\t${db:Status-Status}\t${Version}\n", "--"}, names...)...)
	if err != nil {
		return nil, err
	}
	versions := make(map[string]string, len(names))
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 {
			continue
		}
		// A package whose triggers are still to run is installed; one
		// left half-installed or half-configured by a failed run is not,
		// and installing it again is what repairs it.
		switch f[1] {
		case "installed", "triggers-pending", "triggers-awaited":
			versions[f[0]] = f[2]
		}
	}
	return versions, nil
}

func (b *aptBackend) candidates(ctx context.Context, names []string) (map[string]string, error) {
	out, err := queryCmd(ctx, nil, "apt-cache", append([]string{"policy"}, names...)...)
	if err != nil {
		return nil, err
	}
	versions := make(map[string]string, len(names))
	var cur string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":") {
			cur, _, _ = strings.Cut(strings.TrimSuffix(line, ":"), ":") // drop an :arch
			continue
		}
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && cur != "" && c != "(none)" {
			versions[cur] = c
		}
	}
	return versions, nil
}

// aptBase are the options of every apt-get run that changes the host: no
// questions, wait for dpkg's lock held by another apt rather than fail at
// once, and keep locally changed configuration files without asking.
var aptBase = []string{"-y", "-q", "-o", "DPkg::Lock::Timeout=300",
	"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}

// runApt runs apt-get with args. Once started it runs to the end even if
// ctx is cancelled: killing dpkg halfway leaves packages half-installed,
// which is worse than a late shutdown. A cancelled ctx stops it from
// starting.
func runApt(ctx context.Context, log *slog.Logger, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apt-get not started: %w", context.Cause(ctx))
	}
	log.Debug("running", "cmd", "apt-get", "args", args)
	cmd := exec.Command("apt-get", args...)
	cmd.Env = aptEnv()
	out := newTailBuffer(maxOutput)
	var stdout bytes.Buffer
	w := io.MultiWriter(&stdout, out) // one writer for both: exec copies them on one goroutine
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out.Bytes())))
	}
	return stdout.Bytes(), nil
}

func (b *aptBackend) refresh(ctx context.Context, log *slog.Logger) error {
	log.Info("refreshing package lists", "cmd", "apt-get update")
	_, err := runApt(ctx, log, "-q", "-o", "DPkg::Lock::Timeout=300", "update")
	return err
}

func (b *aptBackend) apply(ctx context.Context, tx pkgTx, log *slog.Logger) error {
	if len(tx.install) > 0 {
		args := slices.Clone(aptBase)
		if tx.untrusted {
			args = append(args, "--allow-unauthenticated")
		}
		if tx.downgrade {
			args = append(args, "--allow-downgrades")
		}
		args = append(append(args, "install"), tx.install...)
		log.Info("installing", "packages", strings.Join(tx.install, " "))
		if _, err := runApt(ctx, log, args...); err != nil {
			return err
		}
	}
	if len(tx.remove) == 0 {
		return nil
	}
	if err := b.checkRemoval(ctx, tx.remove, log); err != nil {
		return err
	}
	log.Info("removing", "packages", strings.Join(tx.remove, " "))
	_, err := runApt(ctx, log, append(append(slices.Clone(aptBase), "remove"), tx.remove...)...)
	return err
}

// checkRemoval refuses a removal that would take other packages with it
// (those that depend on the ones to remove): apt-get would remove them
// without a word, and the graph did not ask for it.
func (b *aptBackend) checkRemoval(ctx context.Context, names []string, log *slog.Logger) error {
	out, err := runApt(ctx, log, append([]string{"-s", "-q", "remove"}, names...)...)
	if err != nil {
		return err
	}
	var extra []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "Remv" {
			continue
		}
		if name, _, _ := strings.Cut(f[1], ":"); !slices.Contains(names, name) { // drop an :arch
			extra = append(extra, f[1])
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("removing %s would also remove %s, which depend on it; declare those uninstalled too",
			strings.Join(names, " "), strings.Join(extra, " "))
	}
	return nil
}

// ownedPaths reads dpkg's list of the package's files. A package of another
// architecture than dpkg's own has its list named name:arch.list.
func (b *aptBackend) ownedPaths(name string) ([]string, error) {
	if b.validName(name) != nil {
		return nil, nil
	}
	info := filepath.Join(b.admin, "info")
	f, err := os.Open(filepath.Join(info, name+".list"))
	if errors.Is(err, fs.ErrNotExist) {
		matches, _ := filepath.Glob(filepath.Join(info, name+":*.list"))
		if len(matches) == 0 {
			return nil, nil
		}
		f, err = os.Open(matches[0])
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if len(paths) == maxOwnedPaths {
			return nil, nil
		}
		if p := sc.Text(); strings.HasPrefix(p, "/") && p != "/." {
			paths = append(paths, p)
		}
	}
	return paths, sc.Err()
}
