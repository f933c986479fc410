package resources

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/graftcm/graft/internal/fswatch"
)

// needRootForAccounts skips a test that changes the host's accounts when not root.
func needRootForAccounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: this test creates and removes real users and groups")
	}
}

// throwawayAccount returns a name for a user or a group that no account on the
// host has, unique to this test process, and removes the user and the
// group of that name when the test ends, failed or not. Names registered
// later are removed first, so register groups before the users in them.
func throwawayAccount(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("graft%s%d", tag, os.Getpid())
	db := accountsNow(t)
	if db.user(name) != nil || db.group(name) != nil {
		t.Fatalf("%s is already an account on this host: refusing to touch it", name)
	}
	removeAccountAtEnd(t, name)
	return name
}

// removeAccountAtEnd removes the user and the group called name when the test
// ends. The caller has made sure that neither existed before the test.
func removeAccountAtEnd(t *testing.T, name string) {
	t.Helper()
	t.Cleanup(func() {
		for _, kind := range []struct {
			tool   string
			exists func(*accounts) bool
		}{
			{"userdel", func(db *accounts) bool { return db.user(name) != nil }},
			{"groupdel", func(db *accounts) bool { return db.group(name) != nil }},
		} {
			db, err := readAccounts()
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			if !kind.exists(db) {
				continue
			}
			if out, err := exec.Command(kind.tool, name).CombinedOutput(); err != nil {
				t.Errorf("cleanup: %s %s: %v: %s", kind.tool, name, err, out)
			}
		}
	})
}

// freeAccountIDs returns n ids that no user and no group of the host has.
func freeAccountIDs(t *testing.T, n int) []uint32 {
	t.Helper()
	db := accountsNow(t)
	var out []uint32
	for id := uint32(50000 + os.Getpid()%5000); len(out) < n && id < 60000; id++ {
		if db.userByUID(id) == nil && db.groupByGID(id) == nil {
			out = append(out, id)
		}
	}
	if len(out) < n {
		t.Fatalf("no %d free ids between 50000 and 60000", n)
	}
	return out
}

func accountsNow(t *testing.T) *accounts {
	t.Helper()
	db, err := readAccounts()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// runShadowTool runs a shadow tool as another process would, failing the test if
// it fails.
func runShadowTool(t *testing.T, tool string, args ...string) {
	t.Helper()
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", tool, args, err, out)
	}
}

// accountFiles returns the contents of the four account files.
func accountFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range []string{passwdPath, groupPath, shadowPath, gshadowPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

// sameAccountFiles fails the test if an account file changed since before.
func sameAccountFiles(t *testing.T, before map[string]string, what string) {
	t.Helper()
	for p, b := range accountFiles(t) {
		if b != before[p] {
			t.Errorf("%s: %s changed", what, p)
		}
	}
}

// initUser validates and initialises u for the test, logging into the
// returned recorder.
func initUser(t *testing.T, u *User) *logRecorder {
	t.Helper()
	if u.tools == nil {
		u.tools = newShadowTools()
	}
	if err := u.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	rt := newTestRuntime("user", u.name)
	logs := &logRecorder{}
	rt.Logger = slog.New(logs)
	if err := u.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	return logs
}

// initGroup is initUser for groups.
func initGroup(t *testing.T, g *Group) *logRecorder {
	t.Helper()
	if g.tools == nil {
		g.tools = newShadowTools()
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	rt := newTestRuntime("group", g.name)
	logs := &logRecorder{}
	rt.Logger = slog.New(logs)
	if err := g.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	return logs
}

// accountsHub runs a file watcher until the test ends.
func accountsHub(t *testing.T) *fswatch.Hub {
	t.Helper()
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return hub
}

// waitAccounts polls the account files until ok holds, failing after a
// generous deadline (the machine is shared and loaded).
func waitAccounts(t *testing.T, what string, ok func(*accounts) bool) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() bool {
		db, err := readAccounts()
		return err == nil && ok(db)
	})
}

func idPtr(n uint32) *uint32 { return &n }

func sortedMemberOf(db *accounts, user string) []string {
	return slices.Sorted(slices.Values(db.memberOf(user)))
}
