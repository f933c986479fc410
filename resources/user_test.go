package resources

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
)

// With apply off, a missing user and a drifted one are reported, in one
// line each, and not one account file changes.
func TestUserNoopChangesNothingAndSaysWhatWouldChange(t *testing.T) {
	needRootForAccounts(t)
	grp := throwawayAccount(t, "ng")
	name := throwawayAccount(t, "nu")
	ids := freeAccountIDs(t, 3)
	runShadowTool(t, "groupadd", "--gid", fmtAccountID(ids[0]), grp)
	home := "/nonexistent/" + name
	u := &User{name: name, UID: idPtr(ids[1]), Group: &grp, Groups: []string{grp}, HomeDir: &home}
	logs := initUser(t, u)

	before := accountFiles(t)
	converge(t, u, false, false)
	sameAccountFiles(t, before, "noop on a missing user")
	rec := only(t, logs.take(), "would change")
	if rec.attrs["action"] != "create" {
		t.Errorf("logged action %q, want create", rec.attrs["action"])
	}
	for _, want := range []string{"uid " + fmtAccountID(ids[1]), "gid " + fmtAccountID(ids[0]), "homedir " + home, "groups [" + grp + "]"} {
		if !strings.Contains(rec.attrs["changes"], want) {
			t.Errorf("logged changes %q, want them to say %q", rec.attrs["changes"], want)
		}
	}

	runShadowTool(t, "useradd", "--uid", fmtAccountID(ids[2]), "--gid", grp, name)
	before = accountFiles(t)
	converge(t, u, false, false)
	sameAccountFiles(t, before, "noop on a drifted user")
	rec = only(t, logs.take(), "would change")
	if rec.attrs["action"] != "modify" {
		t.Errorf("logged action %q, want modify", rec.attrs["action"])
	}
	if want := "uid " + fmtAccountID(ids[2]) + " -> " + fmtAccountID(ids[1]); !strings.Contains(rec.attrs["changes"], want) {
		t.Errorf("logged changes %q, want them to say %q", rec.attrs["changes"], want)
	}
	if strings.Contains(rec.attrs["changes"], "gid") {
		t.Errorf("logged changes %q: the gid is right and is not a change", rec.attrs["changes"])
	}
}

// Applying creates the user as declared; a second run finds it in state and
// rewrites nothing.
func TestUserApplyCreatesItAndASecondRunChangesNothing(t *testing.T) {
	needRootForAccounts(t)
	primary, extra := throwawayAccount(t, "ag"), throwawayAccount(t, "ah")
	name := throwawayAccount(t, "au")
	ids := freeAccountIDs(t, 2)
	runShadowTool(t, "groupadd", "--gid", fmtAccountID(ids[0]), primary)
	runShadowTool(t, "groupadd", extra)
	home := "/nonexistent/" + name
	u := &User{name: name, UID: idPtr(ids[1]), Group: &primary, Groups: []string{extra}, HomeDir: &home}
	initUser(t, u)

	converge(t, u, true, false)
	db := accountsNow(t)
	e := db.user(name)
	if e == nil {
		t.Fatal("the user was not created")
	}
	if e.uid != ids[1] || e.gid != ids[0] || e.home != home {
		t.Errorf("created uid %d gid %d home %q, want %d %d %q", e.uid, e.gid, e.home, ids[1], ids[0], home)
	}
	if got := sortedMemberOf(db, name); !slices.Equal(got, []string{extra}) {
		t.Errorf("member of %v, want [%s]", got, extra)
	}
	before := accountFiles(t)
	converge(t, u, true, true)
	sameAccountFiles(t, before, "second run")
}

// Each field changed behind graft's back (by usermod, as an admin would)
// is put back by the next run, and only then is the user in state.
func TestUserDriftInUIDGIDGroupsAndHomeIsRepaired(t *testing.T) {
	needRootForAccounts(t)
	primary, other, extra := throwawayAccount(t, "dg"), throwawayAccount(t, "dh"), throwawayAccount(t, "di")
	name := throwawayAccount(t, "du")
	ids := freeAccountIDs(t, 3)
	runShadowTool(t, "groupadd", "--gid", fmtAccountID(ids[0]), primary)
	runShadowTool(t, "groupadd", other)
	runShadowTool(t, "groupadd", extra)
	home := "/nonexistent/" + name
	u := &User{name: name, UID: idPtr(ids[1]), GID: idPtr(ids[0]), Groups: []string{extra}, HomeDir: &home}
	initUser(t, u)
	converge(t, u, true, false)

	for _, drift := range []struct {
		what string
		args []string
	}{
		{"uid", []string{"--uid", fmtAccountID(ids[2])}},
		{"gid", []string{"--gid", other}},
		{"groups", []string{"--groups", other}},
		{"groups emptied", []string{"--groups", ""}},
		{"home", []string{"--home", "/elsewhere"}},
	} {
		runShadowTool(t, "usermod", append(drift.args, name)...)
		converge(t, u, true, false)
		db := accountsNow(t)
		e := db.user(name)
		if e == nil || e.uid != ids[1] || e.gid != ids[0] || e.home != home {
			t.Errorf("after %s drift: entry %+v, want uid %d gid %d home %q", drift.what, e, ids[1], ids[0], home)
		}
		if got := sortedMemberOf(db, name); !slices.Equal(got, []string{extra}) {
			t.Errorf("after %s drift: member of %v, want [%s]", drift.what, got, extra)
		}
		converge(t, u, true, true)
	}
}

// State absent removes an existing user; then it is in state.
func TestUserAbsentRemovesIt(t *testing.T) {
	needRootForAccounts(t)
	name := throwawayAccount(t, "xu")
	runShadowTool(t, "useradd", name)
	u := &User{name: name, State: "absent"}
	initUser(t, u)
	converge(t, u, true, false)
	if accountsNow(t).user(name) != nil {
		t.Fatal("the user is still there")
	}
	converge(t, u, true, true)
}

// A UID another user holds is refused, naming that user, unless duplicates
// are allowed; a user that already has it keeps it.
func TestUserUIDHeldByAnotherUserIsRefusedUnlessDuplicatesAreAllowed(t *testing.T) {
	needRootForAccounts(t)
	holder, name := throwawayAccount(t, "hu"), throwawayAccount(t, "hv")
	uid := freeAccountIDs(t, 1)[0]
	runShadowTool(t, "useradd", "--uid", fmtAccountID(uid), holder)
	u := &User{name: name, UID: &uid}
	initUser(t, u)
	_, err := u.CheckApply(t.Context(), true)
	if err == nil || !strings.HasPrefix(err.Error(), "uid: ") || !strings.Contains(err.Error(), holder) {
		t.Fatalf("err = %v, want an error on uid naming %s", err, holder)
	}
	if accountsNow(t).user(name) != nil {
		t.Fatal("the user was created anyway")
	}
	u.AllowDuplicateUID = true
	converge(t, u, true, false)
	if e := accountsNow(t).user(name); e == nil || e.uid != uid {
		t.Fatalf("with allowduplicateuid: entry %+v, want uid %d", e, uid)
	}
	converge(t, u, true, true)
	// A user that holds its UID already is in state without the flag: it
	// is given nothing that another user holds.
	u.AllowDuplicateUID = false
	converge(t, u, true, true)
}

// A user deleted with userdel by another process is seen by Watch at once
// and created again; so is its membership of a supplementary group that
// was deleted with groupdel: the engine runs with no polling, so only the
// watches can bring them back.
func TestUserDeletedWithUserdelIsSeenByWatchAndPutBack(t *testing.T) {
	needRootForAccounts(t)
	primary, extra := throwawayAccount(t, "wg"), throwawayAccount(t, "wh")
	name := throwawayAccount(t, "wu")
	hub := accountsHub(t)
	tools := newShadowTools()
	g := engine.NewGraph("t")
	addVertex(t, g, "group", primary, &Group{name: primary, hub: hub, tools: tools}, engine.Meta{})
	addVertex(t, g, "group", extra, &Group{name: extra, hub: hub, tools: tools}, engine.Meta{})
	addVertex(t, g, "user", name, &User{name: name, Group: &primary, Groups: []string{extra}, hub: hub, tools: tools},
		engine.Meta{})
	if _, skipped := engine.AutoEdges(g); len(skipped) > 0 {
		t.Fatal(skipped)
	}
	runGraph(t, g)
	inState := func(db *accounts) bool {
		return db.user(name) != nil && slices.Equal(db.memberOf(name), []string{extra})
	}
	waitAccounts(t, "the user was never created", inState)

	runShadowTool(t, "userdel", name)
	waitAccounts(t, "the user deleted with userdel was not put back", inState)

	runShadowTool(t, "groupdel", extra)
	waitAccounts(t, "the group deleted with groupdel and the user's membership were not put back", inState)
}

// Where the shadow tools are missing, applying fails with an error that
// names the tool and says what to install; nothing is attempted.
func TestUserAndGroupWithoutShadowToolsFailClearly(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tools := &shadowTools{}
	name := "graftnotools"
	if db := accountsNow(t); db.user(name) != nil || db.group(name) != nil {
		t.Skipf("%s is an account on this host", name)
	}
	u := &User{name: name, tools: tools}
	initUser(t, u)
	_, err := u.CheckApply(t.Context(), true)
	if !errors.Is(err, ErrNoShadowTool) || !strings.Contains(err.Error(), "useradd") || !strings.Contains(err.Error(), "install") {
		t.Errorf("user: err = %v, want ErrNoShadowTool naming useradd and what to install", err)
	}
	g := &Group{name: name, tools: tools}
	initGroup(t, g)
	_, err = g.CheckApply(t.Context(), true)
	if !errors.Is(err, ErrNoShadowTool) || !strings.Contains(err.Error(), "groupadd") {
		t.Errorf("group: err = %v, want ErrNoShadowTool naming groupadd", err)
	}
}

// A group the user names that does not exist is, with apply off, a change
// (a group resource that only checked would have created it); applied, it
// is an error on the field that names it, and nothing runs.
func TestUserNamingAMissingGroupIsAChangeInNoopAndAnErrorWhenApplied(t *testing.T) {
	missing := fmt.Sprintf("graftmg%d", os.Getpid())
	name := fmt.Sprintf("graftmu%d", os.Getpid())
	if db := accountsNow(t); db.group(missing) != nil || db.user(name) != nil {
		t.Skipf("%s or %s is an account on this host", missing, name)
	}
	removeAccountAtEnd(t, name) // should a broken version create it
	for _, tc := range []struct {
		u         *User
		field     string
		wantNoted string
	}{
		{&User{name: name, Group: &missing}, "group: ", `group "` + missing + `" (not existing yet)`},
		{&User{name: name, Groups: []string{missing}}, "groups: ", "groups [" + missing + "] (" + missing + " not existing yet)"},
	} {
		logs := initUser(t, tc.u)
		converge(t, tc.u, false, false)
		if got := only(t, logs.take(), "would change").attrs["changes"]; !strings.Contains(got, tc.wantNoted) {
			t.Errorf("noop logged changes %q, want them to say %q", got, tc.wantNoted)
		}
		_, err := tc.u.CheckApply(t.Context(), true)
		if err == nil || !strings.HasPrefix(err.Error(), tc.field) || !strings.Contains(err.Error(), missing+`" does not exist`) {
			t.Errorf("applied: err = %v, want an error on %s saying %s does not exist", err, tc.field, missing)
		}
	}
	if accountsNow(t).user(name) != nil {
		t.Fatal("the user was created")
	}
}
