package resources

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/internal/fswatch"
)

// aptRepo is a local apt repository in a temporary directory, and an apt
// configuration (in APT_CONFIG, for the rest of the test) that uses it as
// the only source, with lists and cache of its own: the host's sources,
// lists and cache are not touched, and nothing is fetched from the network.
type aptRepo struct {
	t    *testing.T
	dir  string
	pool string
}

// needAptRoot skips unless the test can install packages.
func needAptRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pkg tests install packages: they need root")
	}
	for _, prog := range []string{"dpkg", "dpkg-deb", "dpkg-query", "dpkg-scanpackages", "apt-get", "apt-cache"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("pkg tests need %s (dpkg-scanpackages is in dpkg-dev): %v", prog, err)
		}
	}
}

// newAptRepo makes an empty repository and points apt at it.
func newAptRepo(t *testing.T) *aptRepo {
	t.Helper()
	needAptRoot(t)
	dir := t.TempDir()
	r := &aptRepo{t: t, dir: dir, pool: filepath.Join(dir, "repo")}
	for _, d := range []string{"repo", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.write("sources.list", fmt.Sprintf("deb [trusted=yes] file:%s ./\n", r.pool))
	r.write("apt.conf", fmt.Sprintf("Dir::Etc::sourcelist %q;\nDir::Etc::sourceparts \"-\";\n"+
		"Dir::State::Lists %q;\nDir::Cache %q;\n",
		filepath.Join(dir, "sources.list"), filepath.Join(dir, "lists"), filepath.Join(dir, "cache")))
	t.Setenv("APT_CONFIG", filepath.Join(dir, "apt.conf"))
	r.scan()
	return r
}

func (r *aptRepo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *aptRepo) run(prog string, args ...string) string {
	r.t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testPkgName is a package name no host has: graft-test-<pid>-<suffix>.
// The package is purged when the test ends, whatever happened.
func testPkgName(t *testing.T, suffix string) string {
	t.Helper()
	name := fmt.Sprintf("graft-test-%d-%s", os.Getpid(), suffix)
	t.Cleanup(func() {
		if err := dpkgWaitingForLock("--purge", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// add builds a package with one file, /usr/share/<name>/version, holding
// the version, plus extra files (path -> content; a path ending in "/" is
// an empty directory), and publishes it.
// depends, if set, is its Depends field.
func (r *aptRepo) add(name, version, depends string, extra map[string]string) {
	r.t.Helper()
	root := filepath.Join(r.dir, "build", name+"_"+version)
	files := map[string]string{filepath.Join("/usr/share", name, "version"): version + "\n"}
	for p, c := range extra {
		files[p] = c
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if strings.HasSuffix(p, "/") {
			continue // an empty directory
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: graft tests <root@localhost>\n"+
		"Description: graft test package\n", name, version)
	if depends != "" {
		control += "Depends: " + depends + "\n"
	}
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.run("dpkg-deb", "--build", "--root-owner-group", root, filepath.Join(r.pool, name+"_"+version+"_all.deb"))
	r.scan()
}

// scan rewrites the repository's index.
func (r *aptRepo) scan() {
	r.t.Helper()
	cmd := exec.Command("dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	cmd.Dir = r.pool
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("dpkg-scanpackages: %v", err)
	}
	r.write("repo/Packages", string(out))
}

// install installs name with apt-get, as an administrator would.
func (r *aptRepo) install(name string) {
	r.t.Helper()
	r.run("apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", name)
}

// update fetches the repository's index into the test's lists, as apt's
// daily timer would.
func (r *aptRepo) update() { r.t.Helper(); r.run("apt-get", "update", "-q") }

// installedVersion asks dpkg for the installed version of name, "" if it
// is not installed.
func installedVersion(t *testing.T, name string) string {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", name).Output()
	status, version, _ := strings.Cut(string(out), " ")
	if status != "installed" {
		return ""
	}
	return version
}

// waitInstalled waits until dpkg says name is at version ("" for not
// installed).
func waitInstalled(t *testing.T, name, version string) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%s at version %q", name, version), func() bool {
		return installedVersion(t, name) == version
	})
}

// dpkgRemove removes name with dpkg -r, as another administrator would.
func dpkgRemove(t *testing.T, name string) {
	t.Helper()
	if err := dpkgWaitingForLock("-r", name); err != nil {
		t.Fatal(err)
	}
}

// dpkgWaitingForLock runs dpkg with args, again while another dpkg or apt
// run (of graft, or of another test) holds dpkg's lock, for up to a
// minute.
func dpkgWaitingForLock(args ...string) error {
	var err error
	var out []byte
	poll(60*time.Second, func() bool {
		out, err = exec.Command("dpkg", args...).CombinedOutput()
		return err == nil || !strings.Contains(string(out), "lock")
	})
	if err != nil {
		return fmt.Errorf("dpkg %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// newTestPkg validates and initialises a pkg resource, logging into logs.
func newTestPkg(t *testing.T, p *Pkg, logs *syncBuffer) *testRuntime {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	rt := newTestRuntime("pkg", p.name)
	if logs != nil {
		rt.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	if err := p.Init(&rt.Runtime); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return rt
}

// runHub starts a file watcher hub until the test ends.
func runHub(t *testing.T) *fswatch.Hub {
	t.Helper()
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	return hub
}
