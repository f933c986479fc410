package resources

import (
	"strings"
	"testing"
)

// A group is created with its GID, left alone once in state, has a GID
// changed by groupmod put back, and is removed when declared absent; with
// apply off nothing changes and the change is logged.
func TestGroupCreatedGIDRepairedAndRemoved(t *testing.T) {
	needRootForAccounts(t)
	name := throwawayAccount(t, "gg")
	ids := freeAccountIDs(t, 2)
	g := &Group{name: name, GID: idPtr(ids[0])}
	logs := initGroup(t, g)

	before := accountFiles(t)
	converge(t, g, false, false)
	sameAccountFiles(t, before, "noop on a missing group")
	rec := only(t, logs.take(), "would change")
	if rec.attrs["action"] != "create" || rec.attrs["changes"] != "gid "+fmtAccountID(ids[0]) {
		t.Errorf("logged %v, want action create and changes gid %d", rec.attrs, ids[0])
	}

	converge(t, g, true, false)
	if e := accountsNow(t).group(name); e == nil || e.gid != ids[0] {
		t.Fatalf("created %+v, want gid %d", e, ids[0])
	}
	before = accountFiles(t)
	converge(t, g, true, true)
	sameAccountFiles(t, before, "second run")

	runShadowTool(t, "groupmod", "-g", fmtAccountID(ids[1]), name)
	before = accountFiles(t)
	logs.take()
	converge(t, g, false, false)
	sameAccountFiles(t, before, "noop on a drifted group")
	rec = only(t, logs.take(), "would change")
	if want := "gid " + fmtAccountID(ids[1]) + " -> " + fmtAccountID(ids[0]); rec.attrs["changes"] != want {
		t.Errorf("logged changes %q, want %q", rec.attrs["changes"], want)
	}
	converge(t, g, true, false)
	if e := accountsNow(t).group(name); e == nil || e.gid != ids[0] {
		t.Fatalf("after groupmod drift: %+v, want gid %d", e, ids[0])
	}
	converge(t, g, true, true)

	g.State = "absent"
	converge(t, g, true, false)
	if accountsNow(t).group(name) != nil {
		t.Fatal("the absent group is still there")
	}
	converge(t, g, true, true)
}

// A GID another group holds is refused, naming that group, and nothing is
// created.
func TestGroupGIDHeldByAnotherGroupIsRefused(t *testing.T) {
	needRootForAccounts(t)
	holder, name := throwawayAccount(t, "hg"), throwawayAccount(t, "hh")
	gid := freeAccountIDs(t, 1)[0]
	runShadowTool(t, "groupadd", "-g", fmtAccountID(gid), holder)
	g := &Group{name: name, GID: &gid}
	initGroup(t, g)
	_, err := g.CheckApply(t.Context(), true)
	if err == nil || !strings.HasPrefix(err.Error(), "gid: ") || !strings.Contains(err.Error(), holder) {
		t.Fatalf("err = %v, want an error on gid naming %s", err, holder)
	}
	if accountsNow(t).group(name) != nil {
		t.Fatal("the group was created anyway")
	}
}
