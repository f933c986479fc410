package resources

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rpmRepo is a local dnf repository in a temporary directory and an
// install root beside it, with the root's own dnf configuration, rpm
// database and dnf cache: the host's root, rpm database, repositories and
// cache are never touched, and nothing is fetched from the network.
type rpmRepo struct {
	t    *testing.T
	dir  string
	root string
	repo string
	be   *rpmBackend
}

// needRPM skips unless the machine has what building, indexing and
// installing rpms takes.
func needRPM(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("rpm pkg tests install packages into an install root: they need root")
	}
	for _, prog := range []string{"rpm", "rpmbuild", "dnf", "createrepo_c"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("rpm pkg tests need %s (Debian: apt-get install rpm dnf createrepo-c): %v", prog, err)
		}
	}
}

// newRPMRepo makes an empty repository and an install root whose dnf knows
// only it. With gpgcheck, dnf refuses the repository's packages, which
// are unsigned, unless told not to check.
func newRPMRepo(t *testing.T, gpgcheck bool) *rpmRepo {
	t.Helper()
	needRPM(t)
	dir := t.TempDir()
	r := &rpmRepo{t: t, dir: dir, root: filepath.Join(dir, "root"), repo: filepath.Join(dir, "repo")}
	check := 0
	if gpgcheck {
		check = 1
	}
	// plugins=False: the host's dnf plugins stay out of the test root.
	r.write(filepath.Join(r.root, "etc/dnf/dnf.conf"),
		"[main]\ngpgcheck=True\ninstall_weak_deps=False\ntsflags=nodocs\nplugins=False\n")
	r.write(filepath.Join(r.root, "etc/yum.repos.d/graft-test.repo"),
		fmt.Sprintf("[graft-test]\nname=graft test\nbaseurl=file://%s\ngpgcheck=%d\n", r.repo, check))
	if err := os.MkdirAll(r.repo, 0o755); err != nil {
		t.Fatal(err)
	}
	r.run("rpm", "--root", r.root, "--initdb")
	r.run("createrepo_c", "-q", r.repo)
	be, err := newRPMBackend(r.root)
	if err != nil {
		t.Fatal(err)
	}
	r.be = be
	return r
}

func (r *rpmRepo) write(name, content string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rpmRepo) run(prog string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = rpmEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rpmTestName is a package name no host has: graft-rpmtest-<suffix>.
func rpmTestName(suffix string) string { return "graft-rpmtest-" + suffix }

// add builds a noarch package, version-1, with one file,
// /usr/share/<name>/version, holding the version, plus extra files (path
// -> content; a path ending in "/" is an empty directory the package
// owns), and publishes it. requires, if set, is its Requires.
func (r *rpmRepo) add(name, version, requires string, extra map[string]string) {
	r.t.Helper()
	src := filepath.Join(r.dir, "src", name+"-"+version)
	files := map[string]string{"/usr/share/" + name + "/": "", "/usr/share/" + name + "/version": version + "\n"}
	for p, c := range extra {
		files[p] = c
	}
	var list []string
	for p, c := range files {
		if strings.HasSuffix(p, "/") {
			list = append(list, "%dir "+strings.TrimSuffix(p, "/"))
			if err := os.MkdirAll(filepath.Join(src, p), 0o755); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		list = append(list, p)
		r.write(filepath.Join(src, p), c)
	}
	slices.Sort(list)
	spec := fmt.Sprintf("Name: %s\nVersion: %s\nRelease: 1\nSummary: graft test package\nLicense: none\n"+
		"BuildArch: noarch\nAutoReqProv: no\n", name, version)
	if requires != "" {
		spec += "Requires: " + requires + "\n"
	}
	spec += fmt.Sprintf("%%description\ngraft test package\n%%install\ncp -a %s/. %%{buildroot}/\n%%files\n%s\n",
		src, strings.Join(list, "\n"))
	specFile := filepath.Join(r.dir, name+"-"+version+".spec")
	r.write(specFile, spec)
	top := filepath.Join(r.dir, "build")
	// --nodeps: no build dependencies to check, so rpmbuild never opens
	// (nor creates) the host's rpm database.
	r.run("rpmbuild", "-bb", "--quiet", "--nodeps", "--define", "_topdir "+top, specFile)
	rpm := name + "-" + version + "-1.noarch.rpm"
	b, err := os.ReadFile(filepath.Join(top, "RPMS", "noarch", rpm))
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(filepath.Join(r.repo, rpm), string(b))
	r.run("createrepo_c", "-q", r.repo)
}

// drop unpublishes a version.
func (r *rpmRepo) drop(name, version string) {
	r.t.Helper()
	if err := os.Remove(filepath.Join(r.repo, name+"-"+version+"-1.noarch.rpm")); err != nil {
		r.t.Fatal(err)
	}
	r.run("createrepo_c", "-q", r.repo)
}

// dnf runs dnf on the root, as an administrator would.
func (r *rpmRepo) dnf(args ...string) {
	r.t.Helper()
	r.run("dnf", append([]string{"--installroot", r.root, "-y", "-q"}, args...)...)
}

// refresh fetches the repository's metadata into the root's cache, as
// dnf's makecache timer would.
func (r *rpmRepo) refresh() { r.t.Helper(); r.dnf("--refresh", "makecache") }

// erase removes name with rpm -e, as another administrator would; again
// while a dnf run (of graft) still holds rpm's transaction lock, which
// rpm -e does not wait for, for up to a minute.
func (r *rpmRepo) erase(name string) {
	r.t.Helper()
	var err error
	var out []byte
	poll(60*time.Second, func() bool {
		cmd := exec.Command("rpm", "--root", r.root, "-e", "--", name)
		cmd.Env = rpmEnv()
		out, err = cmd.CombinedOutput()
		return err == nil || !strings.Contains(string(out), "transaction lock")
	})
	if err != nil {
		r.t.Fatalf("rpm -e %s: %v\n%s", name, err, out)
	}
}

// version asks rpm for the installed version-release of name, "" if it
// is not installed.
func (r *rpmRepo) version(name string) string {
	r.t.Helper()
	cmd := exec.Command("rpm", "--root", r.root, "-q", "--qf", "%{VERSION}-%{RELEASE}", "--", name)
	cmd.Env = rpmEnv()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// waitVersion waits until rpm says name is at version ("" for not
// installed).
func (r *rpmRepo) waitVersion(name, version string) {
	r.t.Helper()
	eventually(r.t, 60*time.Second, fmt.Sprintf("%s at version %q", name, version), func() bool {
		return r.version(name) == version
	})
}

// pkg makes a pkg resource in state on the test root, validated and
// initialised.
func (r *rpmRepo) pkg(name, state string, logs *syncBuffer) *Pkg {
	r.t.Helper()
	p := r.newPkg(name, state)
	newTestPkg(r.t, p, logs)
	return p
}

// newPkg makes a pkg resource in state on the test root.
func (r *rpmRepo) newPkg(name, state string) *Pkg {
	p := newPkg(name, nil)
	p.State, p.be = state, r.be
	return p
}
