package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// wantAccount fails t unless the line of file (/etc/passwd or /etc/group)
// for name has the given fields (index: value); an empty want asks for no
// such line.
func wantAccount(t *testing.T, file, name string, want map[int]string) {
	t.Helper()
	f := colonEntry(t, file, name)
	switch {
	case want == nil && f != nil:
		t.Errorf("%s still has %s: %q", file, name, strings.Join(f, ":"))
	case want == nil:
	case f == nil:
		t.Errorf("%s has no %s", file, name)
	default:
		for i, v := range want {
			if i >= len(f) || f[i] != v {
				t.Errorf("%s: %s is %q, want field %d to be %q", file, name, strings.Join(f, ":"), i, v)
			}
		}
	}
}

// wantBefore fails t unless log holds first, and later second.
func wantBefore(t *testing.T, log, first, second string) {
	t.Helper()
	i, j := strings.Index(log, first), strings.Index(log, second)
	if i < 0 || j < 0 || i > j {
		t.Errorf("graft's log does not have %s (at %d) before %s (at %d):\n%s", first, i, second, j, log)
	}
}

// wantNoAccounts skips t if the host already holds one of the example's
// accounts or ids: the example could not show its meaning on it.
func wantNoAccounts(t *testing.T, users, groups, uids, gids []string) {
	t.Helper()
	for _, c := range []struct {
		file   string
		field  int
		values []string
	}{{"/etc/passwd", 0, users}, {"/etc/group", 0, groups}, {"/etc/passwd", 2, uids}, {"/etc/group", 2, gids}} {
		b, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Split(line, ":"); len(f) > c.field && slices.Contains(c.values, f[c.field]) {
				t.Skipf("this host's %s already has %q, which the example creates", c.file, line)
			}
		}
	}
}

// mgmt's user1 makes testuser with uid 1002 and primary group 100, as real
// root with the shadow tools, in a private overlay of the host's /etc.
func TestMgmtExampleUser1CreatesTestuser(t *testing.T) {
	src := mgmtExample(t, "pre-yaml/user1.yaml")
	if !runWithPrivateEtc(t, false, "testuser") {
		return
	}
	wantNoAccounts(t, []string{"testuser"}, nil, []string{"1002"}, nil)
	runMgmtExample(t, src, "user1.yaml")
	wantAccount(t, "/etc/passwd", "testuser", map[int]string{2: "1002", 3: "100"})
	wantInOverlay(t, "passwd")
}

// mgmt's group1 makes testgroup with gid 10000.
func TestMgmtExampleGroup1CreatesTestgroup(t *testing.T) {
	src := mgmtExample(t, "pre-yaml/group1.yaml")
	if !runWithPrivateEtc(t, false, "testgroup") {
		return
	}
	wantNoAccounts(t, nil, []string{"testgroup"}, nil, []string{"10000"})
	runMgmtExample(t, src, "group1.yaml")
	wantAccount(t, "/etc/group", "testgroup", map[int]string{2: "10000"})
	wantInOverlay(t, "group")
}

// mgmt's autoedges4 removes edgeuser, makes edgegroup with gid 10000 and
// two more groups, and makes edgeuser2 in edgegroup and in the other two:
// the automatic edges make the groups before the user put in them (useradd
// refuses a group that does not exist yet) and remove edgeuser, whose gid
// is 10000, before edgegroup is applied.
func TestMgmtExampleAutoedges4OrdersUsersAndGroups(t *testing.T) {
	src := mgmtExample(t, "pre-yaml/autoedges4.yaml")
	names := []string{"edgeuser", "edgeuser2", "edgegroup", "edgegroup2", "edgegroup3"}
	if !runWithPrivateEtc(t, false, names...) {
		return
	}
	wantNoAccounts(t, names[:2], names[2:], nil, []string{"10000"})
	// edgeuser exists first, so that its removal shows.
	if out, err := exec.Command("useradd", "-M", "-N", "-g", "100", "edgeuser").CombinedOutput(); err != nil {
		t.Fatalf("useradd edgeuser: %v: %s", err, out)
	}
	wantAccount(t, "/etc/passwd", "edgeuser", map[int]string{3: "100"})
	log := runMgmtExample(t, src, "autoedges4.yaml")
	wantBefore(t, log, `msg="resource applied" resource=user[edgeuser] `, `msg="changing group" resource=group[edgegroup] `)
	for _, g := range names[2:] {
		wantBefore(t, log, `msg="resource applied" resource=group[`+g+`] `, `msg="changing user" resource=user[edgeuser2] `)
	}
	wantAccount(t, "/etc/passwd", "edgeuser", nil)
	wantAccount(t, "/etc/group", "edgegroup", map[int]string{2: "10000"})
	wantAccount(t, "/etc/passwd", "edgeuser2", map[int]string{3: "10000"})
	for _, g := range []string{"edgegroup2", "edgegroup3"} {
		wantAccount(t, "/etc/group", g, map[int]string{3: "edgeuser2"})
	}
	wantInOverlay(t, "passwd")
	wantInOverlay(t, "group")
}

// mgmt's hostname example sets the kernel's name and /etc/hostname (and
// the pretty name) to test.hostname.example.com, in a UTS namespace and a
// private /etc, with no system bus to reach a hostnamed.
func TestMgmtExampleHostnameSetsTheNames(t *testing.T) {
	src := mgmtExample(t, "hostname.yaml")
	if !runWithPrivateEtc(t, true) {
		return
	}
	const want = "test.hostname.example.com"
	if err := syscall.Sethostname([]byte("graft-test-before")); err != nil {
		t.Fatalf("sethostname: %v", err)
	}
	runMgmtExample(t, src, "hostname.yaml")
	if out, err := exec.Command("uname", "-n").Output(); err != nil || string(out) != want+"\n" {
		t.Errorf("uname -n: %q, %v; want %q", out, err, want)
	}
	wantFile(t, "/etc/hostname", want+"\n")
	b, err := os.ReadFile("/etc/machine-info")
	// An environment file, as systemd reads it, the value quoted.
	if err != nil || !strings.Contains(string(b), "PRETTY_HOSTNAME=\""+want+"\"\n") {
		t.Errorf("/etc/machine-info: %q, %v; want PRETTY_HOSTNAME=\"%s\"", b, err, want)
	}
}
