package resources

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// checkAccountsYAML loads a graph as graft check does, wanting no error and no warning.
func checkAccountsYAML(t *testing.T, file, src string) *yamlgraph.Result {
	t.Helper()
	res, err := yamlgraph.Parse(file, []byte(src), NewRegistry(Deps{}))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: warning: %v", file, w)
	}
	return res
}

// mgmt's user and group examples load as graft check loads them.
func TestMgmtUserAndGroupExamplesPassCheck(t *testing.T) {
	for _, file := range []string{"pre-yaml/user1.yaml", "pre-yaml/group1.yaml", "pre-yaml/autoedges4.yaml"} {
		checkAccountsYAML(t, file, string(mgmtExample(t, file)))
	}
}

// A user that must exist depends on every group it names, by name or by
// GID; a user that must go is removed before the group it names (so that
// the group is not removed while it is still the user's). mgmt's
// autoedges4 example shows both.
func TestUserDependsOnTheGroupsItNames(t *testing.T) {
	res := checkAccountsYAML(t, "autoedges4.yaml", string(mgmtExample(t, "pre-yaml/autoedges4.yaml")))
	var got []string
	for _, e := range res.Graph.Edges() {
		got = append(got, e.From.String()+" -> "+e.To.String())
	}
	slices.Sort(got)
	want := []string{
		"group[edgegroup2] -> user[edgeuser2]",
		"group[edgegroup3] -> user[edgeuser2]",
		"group[edgegroup] -> user[edgeuser2]",
		"user[edgeuser] -> group[edgegroup]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("edges\n  %v\nwant\n  %v", got, want)
	}
}

// Two users that must hold one UID, or two groups one GID, are refused at
// load, naming both; users that allow duplicate UIDs may share one.
func TestTwoUsersOnOneUIDOrTwoGroupsOnOneGIDConflict(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"uid", "resources:\n  user:\n  - name: a\n    uid: 1500\n  - name: b\n    uid: 1500\n",
			`user "b": manages uid 1500, which user "a"`},
		{"gid", "resources:\n  group:\n  - name: a\n    gid: 1500\n  - name: b\n    gid: 1500\n",
			`group "b": manages gid 1500, which group "a"`},
	} {
		_, err := yamlgraph.Parse(tc.name+".yaml", []byte(tc.src), NewRegistry(Deps{}))
		if !errors.Is(err, engine.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a conflict saying %q", tc.name, err, tc.want)
		}
	}
	checkAccountsYAML(t, "dup.yaml", "resources:\n  user:\n  - name: a\n    uid: 1500\n    allowduplicateuid: true\n"+
		"  - name: b\n    uid: 1500\n    allowduplicateuid: true\n")
	checkAccountsYAML(t, "absent.yaml", "resources:\n  group:\n  - name: a\n    gid: 1500\n  - name: b\n    gid: 1500\n    state: absent\n")
	// One resource per name is all a graph can hold: the name claims
	// guard against two vertices on one account all the same.
	u, g := &User{name: "a"}, &Group{name: "a"}
	if c := u.Claims(); len(c) != 1 || c[0].Space != "user" || c[0].Name != "a" {
		t.Errorf("user claims %v, want user a", c)
	}
	if c := g.Claims(); len(c) != 1 || c[0].Space != "group" || c[0].Name != "a" {
		t.Errorf("group claims %v, want group a", c)
	}
}

// Bad parameters are refused with an error that starts with the field at
// fault and says what was expected; the YAML loader points at its line.
func TestUserAndGroupValidateNameTheField(t *testing.T) {
	for _, tc := range []struct {
		res  engine.Res
		want string
	}{
		{&User{name: "Alice"}, `name: "Alice" is not a valid user name: 'A' at position 1; want`},
		{&User{name: "a"}, ""},
		{&User{name: "_svc-x.y$"}, ""},
		{&User{name: strings.Repeat("a", 33)}, "name: "},
		{&User{name: "a", State: "present"}, `state: "present" is not one of exists or absent`},
		{&User{name: "a", UID: idPtr(noAccountID)}, "uid: 4294967295 is reserved"},
		{&User{name: "a", GID: idPtr(noAccountID)}, "gid: 4294967295 is reserved"},
		{&User{name: "a", GID: idPtr(5), Group: strptr("g")}, `gid: given with group "g"`},
		{&User{name: "a", Group: strptr("a:b")}, `group: "a:b" is not a valid group name`},
		{&User{name: "a", Groups: []string{"x", "x"}}, `groups: "x" is listed twice`},
		{&User{name: "a", Groups: []string{"x", ""}}, "groups: the group name is empty"},
		{&User{name: "a", HomeDir: strptr("home/a")}, `homedir: "home/a" is not an absolute path`},
		{&User{name: "a", HomeDir: strptr("/home/a:b")}, "homedir: "},
		{&Group{name: "9lives"}, `name: "9lives" is not a valid group name`},
		{&Group{name: "g", State: "gone"}, `state: "gone"`},
		{&Group{name: "g", GID: idPtr(noAccountID)}, "gid: 4294967295 is reserved"},
	} {
		err := tc.res.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.res, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v: err = %v, want it to start with %q", tc.res, err, tc.want)
		}
	}
	_, err := yamlgraph.Parse("bad.yaml", []byte("resources:\n  user:\n  - name: u\n    homedir: rel\n"), NewRegistry(Deps{}))
	if err == nil || !strings.Contains(err.Error(), `bad.yaml:4:5: user "u": homedir: "rel" is not an absolute path`) {
		t.Errorf("err = %v, want it at the homedir key", err)
	}
}

// The parameters a removed user cannot use are named with a warning; the
// groups it names are not, since they order its removal.
func TestAbsentUserWarnsAboutTheParametersItIgnores(t *testing.T) {
	res, err := yamlgraph.Parse("a.yaml", []byte("resources:\n  user:\n  - name: u\n    state: absent\n"+
		"    uid: 5\n    homedir: /h\n    group: g\n    groups: [h]\n"), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.String())
	}
	if len(got) != 2 || !strings.Contains(got[0], "uid: ignored: state is absent") || !strings.Contains(got[1], "homedir: ignored") {
		t.Errorf("warnings %q, want uid and homedir ignored", got)
	}
}

// mgmt's group1 and user1 examples run on this host where their names and
// ids are free: the group is created with GID 10000, the user with UID 1002
// in group 100.
func TestMgmtUserAndGroupExamplesRun(t *testing.T) {
	needRootForAccounts(t)
	db := accountsNow(t)
	switch {
	case db.group("testgroup") != nil || db.groupByGID(10000) != nil:
		t.Skip("group1.yaml cannot run here: group testgroup or gid 10000 already exists")
	case db.user("testuser") != nil || db.userByUID(1002) != nil:
		t.Skip("user1.yaml cannot run here: user testuser or uid 1002 already exists")
	case db.groupByGID(100) == nil:
		t.Skip("user1.yaml cannot run here: no group has gid 100")
	case db.group("testuser") != nil:
		t.Skip("user1.yaml cannot run here: a group named testuser exists")
	}
	removeAccountAtEnd(t, "testgroup")
	removeAccountAtEnd(t, "testuser")
	reg := NewRegistry(Deps{Files: accountsHub(t)})
	for _, file := range []string{"pre-yaml/group1.yaml", "pre-yaml/user1.yaml"} {
		res, err := yamlgraph.Parse(file, mgmtExample(t, file), reg)
		if err != nil {
			t.Fatal(err)
		}
		runGraph(t, res.Graph)
	}
	waitAccounts(t, "group1.yaml: testgroup never got gid 10000", func(db *accounts) bool {
		g := db.group("testgroup")
		return g != nil && g.gid == 10000
	})
	waitAccounts(t, "user1.yaml: testuser never got uid 1002, gid 100", func(db *accounts) bool {
		u := db.user("testuser")
		return u != nil && u.uid == 1002 && u.gid == 100
	})
}

// A file owned by a user or group that the graph creates is applied after
// them: before, it ran first and failed on an unknown owner. Owners given
// by id match the user's or group's declared id.
func TestFileOwnedByAUserOrGroupOfTheGraphRunsAfterThem(t *testing.T) {
	src := `---
resources:
  user:
  - name: alice
    uid: 1500
  group:
  - name: staff
    gid: 1600
  file:
  - name: /srv/a
    content: a
    owner: alice
    group: staff
  - name: /srv/b
    content: b
    owner: "01500"
    group: "1600"
`
	res, err := yamlgraph.Parse("owners.yaml", []byte(src), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, skipped := engine.AutoEdges(res.Graph); len(skipped) > 0 {
		t.Fatal(skipped)
	}
	var got []string
	for _, e := range res.Graph.Edges() {
		got = append(got, e.From.String()+" -> "+e.To.String())
	}
	slices.Sort(got)
	want := []string{
		"group[staff] -> file[/srv/a]",
		"group[staff] -> file[/srv/b]",
		"user[alice] -> file[/srv/a]",
		"user[alice] -> file[/srv/b]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("edges\n  %v\nwant\n  %v", got, want)
	}
}
