package resources

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rpmVerPairs are versions whose order exercises every rule of rpm's:
// numbers, leading zeros, letters against numbers, separators, '~', '^',
// epochs and releases.
var rpmVerPairs = [][2]string{
	{"1.0", "1.0"}, {"1.0", "2.0"}, {"2.0", "1.0"}, {"1.10", "1.9"}, {"1.010", "1.10"},
	{"1.0a", "1.0"}, {"1.0", "1.0a"}, {"1.a", "1.1"}, {"1a", "1b"}, {"a", "1"}, {"B", "a"},
	{"1.0", "1_0"}, {"1.0.", "1.0"}, {"1..0", "1.0"}, {"1.0+x", "1.0"}, {"1.0", "1.0.0"},
	{"1.0~rc1", "1.0"}, {"1.0~rc1", "1.0~rc2"}, {"1.0~~", "1.0~"}, {"1.0~", "1.0"}, {"1.0~rc1", "1.0~rc1"},
	{"1.0^git1", "1.0"}, {"1.0^git1", "1.0.1"}, {"1.0^", "1.0^1"}, {"1.0^git1", "1.0^git2"}, {"1.0^a", "1.0~a"},
	{"1.0-1", "1.0-2"}, {"1.0-10", "1.0-9"}, {"1.0-1.fc40", "1.0-1.fc39"}, {"1.0-1.el9_2", "1.0-1.el9"},
	{"1:1.0-1", "2.0-1"}, {"1:1.0-1", "1:1.0-1"}, {"2:1.0-1", "10:0.1-1"}, {"0:1.0-1", "1.0-1"},
	{"20240101", "2.0"}, {"1.0.0001", "1.0.1"}, {"1.0-1~beta", "1.0-1"}, {"5.2.15", "5.2.9"},
}

// compareEVR orders versions exactly as rpm itself does (its Lua
// rpm.vercmp is the reference).
func TestRPMVersionOrderAgreesWithRpm(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skipf("comparing with rpm's own order needs rpm: %v", err)
	}
	var lua strings.Builder
	for _, p := range rpmVerPairs {
		fmt.Fprintf(&lua, "print(rpm.vercmp(%q, %q) .. ' ') ", p[0], p[1])
	}
	out, err := exec.Command("rpm", "--eval", "%{lua: "+lua.String()+"}").Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	want := strings.Fields(string(out))
	if len(want) != len(rpmVerPairs) {
		t.Fatalf("rpm answered %q for %d pairs", out, len(rpmVerPairs))
	}
	for i, p := range rpmVerPairs {
		if got := fmt.Sprint(compareEVR(parseEVR(p[0]), parseEVR(p[1]))); got != want[i] {
			t.Errorf("compareEVR(%q, %q) = %s, rpm says %s", p[0], p[1], got, want[i])
		}
	}
}

// Names and versions that rpm or dnf could take for something else (an
// option, a file, a glob, a second argument) are refused before any
// command sees them; an epoch of 0 is refused as rpm never shows it.
func TestRPMPkgRefusesBadNamesAndVersions(t *testing.T) {
	b := &rpmBackend{root: "/"}
	for _, name := range []string{"NetworkManager", "libstdc++", "python3.11", "perl-Text-CSV_XS", "0ad"} {
		if err := b.validName(name); err != nil {
			t.Errorf("validName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"-y", "--nogpgcheck", "a b", "foo*", "@core", "/tmp/x.rpm", "x.rpm", "a;b", "a/b", ""} {
		if err := b.validName(name); err == nil {
			t.Errorf("validName(%q) = nil, want a refusal", name)
		}
	}
	for _, v := range []string{"1.0-1", "2:1.2.3-4.fc40", "1.0~rc1-0.1.el9", "1.0^20240101git-1", "10:5-1"} {
		if err := b.validVersion(v); err != nil {
			t.Errorf("validVersion(%q) = %v, want nil", v, err)
		}
	}
	for _, v := range []string{"1.0", "0:1.0-1", "01:1.0-1", "-1.0-1", "1.0-1-2", "1.0-", "1.0-1 --x", "1.0-1*", "a:1.0-1"} {
		if err := b.validVersion(v); err == nil || !strings.Contains(err.Error(), "[epoch:]version-release") {
			t.Errorf("validVersion(%q) = %v, want a refusal", v, err)
		}
	}
	p := newPkg("x.rpm", nil)
	p.be = b
	if err := p.Init(&newTestRuntime("pkg", p.name).Runtime); err == nil || !strings.Contains(err.Error(), "name:") {
		t.Errorf("Init(%q) with the rpm backend = %v, want a refusal of the name", p.name, err)
	}
}

// linkProgs makes a directory of symbolic links to the named programs,
// for PATH.
func linkProgs(t *testing.T, progs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, prog := range progs {
		real, err := exec.LookPath(prog)
		if err != nil {
			t.Skipf("choosing a backend needs %s: %v", prog, err)
		}
		if err := os.Symlink(real, filepath.Join(dir, prog)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dpkg and apt win where dpkg's status file exists and apt's programs are
// in PATH; rpm and dnf are used otherwise, even with apt-get present;
// without either pair the error says what is missing.
func TestPkgBackendIsChosenByWhatTheHostHas(t *testing.T) {
	withStatus, without := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(withStatus, "status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Debian's rpm runs bash to find its database.
	both := linkProgs(t, "bash", "dpkg-query", "apt-get", "apt-cache", "rpm", "dnf")
	rpmOnly := linkProgs(t, "bash", "rpm", "dnf")
	noDnf := linkProgs(t, "bash", "dpkg-query", "apt-get", "apt-cache", "rpm")
	for _, tc := range []struct {
		admin, path, want string
	}{
		{withStatus, both, "*resources.aptBackend"},
		{without, both, "*resources.rpmBackend"},
		{withStatus, rpmOnly, "*resources.rpmBackend"},
	} {
		t.Setenv("PATH", tc.path)
		be, err := pickBackend(tc.admin, "/")
		if got := fmt.Sprintf("%T", be); err != nil || got != tc.want {
			t.Errorf("pickBackend(%s) = %s, %v; want %s", tc.admin, got, err, tc.want)
		}
	}
	t.Setenv("PATH", noDnf)
	_, err := pickBackend(without, "/")
	if !errors.Is(err, ErrNoPackageManager) || !strings.Contains(err.Error(), filepath.Join(without, "status")) ||
		!strings.Contains(err.Error(), "rpm with dnf") {
		t.Errorf("pickBackend without dnf and dpkg's status: %v, want ErrNoPackageManager saying what is missing", err)
	}
}

// Watch follows the database file rpm writes at each transaction: the
// configured backend's if it exists, else an existing one of another
// backend (which rpm then uses), else the configured one to come.
func TestRPMDatabaseFileIsTheOneRpmWrites(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		exist   []string
		backend string
		want    string
	}{
		{nil, "sqlite", "rpmdb.sqlite"},
		{nil, "bdb", "Packages"},
		{nil, "%{_db_backend}", "Packages"}, // rpm before 4.16
		{nil, "ndb", "Packages.db"},
		{[]string{"Packages"}, "sqlite", "Packages"},
		{[]string{"Packages", "rpmdb.sqlite"}, "sqlite", "rpmdb.sqlite"},
		{[]string{"Packages", "rpmdb.sqlite"}, "bdb", "Packages"},
	} {
		d, err := os.MkdirTemp(dir, "db")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tc.exist {
			if err := os.WriteFile(filepath.Join(d, n), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := rpmDBFile(d, tc.backend); got != filepath.Join(d, tc.want) {
			t.Errorf("rpmDBFile with %q, backend %s = %s, want %s", tc.exist, tc.backend, filepath.Base(got), tc.want)
		}
	}
}
