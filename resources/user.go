package resources

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// User manages a local user account, named by the resource name, through
// the shadow tools: useradd creates it, usermod repairs it, userdel removes
// it. Only what is declared is managed; a new account gets the system's
// defaults (/etc/login.defs, /etc/default/useradd) for the rest. Passwords
// are not managed.
type User struct {
	// State is "exists" (the default when empty) or "absent". Removing a
	// user leaves its home directory and mail spool in place.
	State string `yaml:"state"`
	// UID is the user's id. Another user holding it is an error unless
	// AllowDuplicateUID is set.
	UID *uint32 `yaml:"uid"`
	// GID and Group name the primary group, by id or by name; at most one
	// of them is given.
	GID   *uint32 `yaml:"gid"`
	Group *string `yaml:"group"`
	// Groups are the supplementary groups, exactly: the user is added to
	// these and removed from every other. Unset leaves them unmanaged; an
	// empty list means none.
	Groups []string `yaml:"groups"`
	// HomeDir is the home directory recorded for the user. The directory
	// itself is neither created nor moved: manage it with a file resource.
	HomeDir *string `yaml:"homedir"`
	// AllowDuplicateUID lets the user share its UID with another user.
	AllowDuplicateUID bool `yaml:"allowduplicateuid"`

	name  string
	hub   *fswatch.Hub
	tools *shadowTools
	rt    *engine.Runtime
}

func (u *User) absent() bool { return u.State == stateAbsent }

// Validate checks the parameters without looking at the host.
func (u *User) Validate() error {
	if err := checkAccountName("name", "user", u.name); err != nil {
		return err
	}
	switch u.State {
	case "", stateExists, stateAbsent:
	default:
		return engine.ParamErrorf("state", "%q is not one of exists or absent", u.State)
	}
	if err := checkAccountID("uid", u.UID); err != nil {
		return err
	}
	if err := checkAccountID("gid", u.GID); err != nil {
		return err
	}
	if u.GID != nil && u.Group != nil {
		return engine.ParamErrorf("gid", "given with group %q; name the primary group by gid or by group, not both", *u.Group)
	}
	if u.Group != nil {
		if err := checkAccountName("group", "group", *u.Group); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, g := range u.Groups {
		if err := checkAccountName("groups", "group", g); err != nil {
			return err
		}
		if seen[g] {
			return engine.ParamErrorf("groups", "%q is listed twice", g)
		}
		seen[g] = true
	}
	if u.HomeDir != nil {
		h := *u.HomeDir
		if !filepath.IsAbs(h) {
			return engine.ParamErrorf("homedir", "%q is not an absolute path", h)
		}
		if strings.ContainsAny(h, ":\n") {
			return engine.ParamErrorf("homedir", "%q holds a colon or a newline, which /etc/passwd cannot hold", h)
		}
	}
	return nil
}

// IgnoredParams names the parameters a removed user makes meaningless. The
// groups it names are not among them: they order its removal before theirs.
func (u *User) IgnoredParams() map[string]string {
	ignored := map[string]string{}
	if u.absent() {
		const why = "state is absent: the user is removed"
		if u.UID != nil {
			ignored["uid"] = why
		}
		if u.HomeDir != nil {
			ignored["homedir"] = why
		}
		if u.AllowDuplicateUID {
			ignored["allowduplicateuid"] = why
		}
	} else if u.AllowDuplicateUID && u.UID == nil {
		ignored["allowduplicateuid"] = "no uid is given"
	}
	if len(ignored) == 0 {
		return nil
	}
	return ignored
}

// Init keeps the runtime.
func (u *User) Init(rt *engine.Runtime) error {
	u.rt = rt
	return nil
}

// Cleanup does nothing.
func (u *User) Cleanup() error { return nil }

// Watch reports every change of the account files.
func (u *User) Watch(ctx context.Context) error {
	if err := watchAccountFiles(ctx, u.hub, u.rt, passwdPath, groupPath, shadowPath, gshadowPath); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	return nil
}

// CheckApply brings the account to the declared state. With apply false it
// changes nothing and logs, in one line, what it would change.
func (u *User) CheckApply(ctx context.Context, apply bool) (bool, error) {
	db, err := readAccounts()
	if err != nil {
		return false, err
	}
	cur := db.user(u.name)
	if u.absent() {
		if cur == nil {
			return true, nil
		}
		if !apply {
			u.rt.Logger.Info("would change", "user", u.name, "action", "remove")
			return false, nil
		}
		u.rt.Logger.Info("removing user", "user", u.name)
		return false, u.tools.run(ctx, "userdel", u.name)
	}
	if err := u.checkUID(db, cur); err != nil {
		return false, err
	}
	d, err := u.diff(db, cur, apply)
	if err != nil {
		return false, err
	}
	if cur != nil && d.none() {
		return true, nil
	}
	action, tool := "modify", "usermod"
	if cur == nil {
		action, tool = "create", "useradd"
	}
	if !apply {
		u.rt.Logger.Info("would change", "user", u.name, "action", action, "changes", d.String())
		return false, nil
	}
	u.rt.Logger.Info("changing user", "user", u.name, "action", action, "changes", d.String())
	return false, u.tools.run(ctx, tool, append(d.args, u.name)...)
}

// checkUID refuses to give the user a UID that another user holds, unless
// duplicates are allowed. A user that has its UID already keeps it.
func (u *User) checkUID(db *accounts, cur *passwdEntry) error {
	if u.UID == nil || u.AllowDuplicateUID || (cur != nil && cur.uid == *u.UID) {
		return nil
	}
	if other := db.userByUID(*u.UID); other != nil && other.name != u.name {
		return fmt.Errorf("uid: %d belongs to user %q; set allowduplicateuid: true to share it", *u.UID, other.name)
	}
	return nil
}

// userDiff is how an account differs from the declared one: a description
// of each change, and the options of useradd or usermod that make it.
type userDiff struct {
	apply   bool
	changes []string
	args    []string
}

// missing reports a group the declaration names that does not exist: an
// error with apply, else a change.
func (d *userDiff) missing(field, what string) error {
	if d.apply {
		return fmt.Errorf("%s: %s does not exist", field, what)
	}
	d.changes = append(d.changes, field+" "+what+" (not existing yet)")
	return nil
}

func (d *userDiff) none() bool { return len(d.changes) == 0 }

func (d *userDiff) String() string { return strings.Join(d.changes, "; ") }

func (d *userDiff) add(change string, args ...string) {
	d.changes = append(d.changes, change)
	d.args = append(d.args, args...)
}

// diff compares the account cur (nil if missing) with the declaration. For
// a missing account every declared field is a change. A group that does not
// exist is an error with apply, since useradd and usermod would refuse it;
// without apply it is a change, as a group resource that has not run for
// real would have created it.
func (u *User) diff(db *accounts, cur *passwdEntry, apply bool) (*userDiff, error) {
	d := &userDiff{apply: apply}
	if u.UID != nil && (cur == nil || cur.uid != *u.UID) {
		var args []string
		if u.AllowDuplicateUID {
			args = append(args, "-o")
		}
		d.add(fieldChange("uid", cur, func(e *passwdEntry) string { return fmtAccountID(e.uid) }, fmtAccountID(*u.UID)),
			append(args, "-u", fmtAccountID(*u.UID))...)
	}
	if err := u.diffPrimary(db, cur, d); err != nil {
		return nil, err
	}
	if u.HomeDir != nil && (cur == nil || cur.home != *u.HomeDir) {
		d.add(fieldChange("homedir", cur, func(e *passwdEntry) string { return e.home }, *u.HomeDir),
			"-d", *u.HomeDir)
	}
	if u.Groups != nil {
		if err := u.diffGroups(db, cur, d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// diffGroups adds the change of supplementary groups, if any. A group that
// does not exist is an error with apply, and noted in the change without.
func (u *User) diffGroups(db *accounts, cur *passwdEntry, d *userDiff) error {
	var missing []string
	for _, g := range u.Groups {
		if db.group(g) == nil {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 && d.apply {
		return fmt.Errorf("groups: group %q does not exist", missing[0])
	}
	want := slices.Sorted(slices.Values(u.Groups))
	var have []string
	if cur != nil {
		have = slices.Sorted(slices.Values(db.memberOf(u.name)))
	}
	if slices.Equal(want, have) || (cur == nil && len(want) == 0) {
		return nil
	}
	change := fieldChange("groups", cur, func(*passwdEntry) string { return "[" + strings.Join(have, " ") + "]" },
		"["+strings.Join(want, " ")+"]")
	if len(missing) > 0 {
		change += " (" + strings.Join(missing, " ") + " not existing yet)"
	}
	d.add(change, "-G", strings.Join(u.Groups, ","))
	return nil
}

// diffPrimary adds the change of primary group, if any.
func (u *User) diffPrimary(db *accounts, cur *passwdEntry, d *userDiff) error {
	var want uint32
	var arg string
	switch {
	case u.GID != nil:
		want, arg = *u.GID, fmtAccountID(*u.GID)
		if db.groupByGID(want) == nil {
			return d.missing("gid", "a group of gid "+arg)
		}
	case u.Group != nil:
		g := db.group(*u.Group)
		if g == nil {
			return d.missing("group", strconv.Quote(*u.Group))
		}
		want, arg = g.gid, *u.Group
	default:
		return nil
	}
	if cur != nil && cur.gid == want {
		return nil
	}
	d.add(fieldChange("gid", cur, func(e *passwdEntry) string { return fmtAccountID(e.gid) }, fmtAccountID(want)), "-g", arg)
	return nil
}

// fieldChange describes the change of one field: "uid 1001 -> 1002", or
// "uid 1002" for an account that does not exist yet.
func fieldChange(field string, cur *passwdEntry, get func(*passwdEntry) string, want string) string {
	if cur == nil {
		return field + " " + want
	}
	return field + " " + get(cur) + " -> " + want
}

// Provides names, for an existing user, the user itself ("user:NAME", and
// "uid:N" with a uid), so that a file it owns is applied after it; for a
// removed user, what it must go before: the groups it names, so that a
// group is not removed while it is still the user's.
func (u *User) Provides() []string {
	if !u.absent() {
		out := []string{"user:" + u.name}
		if u.UID != nil {
			out = append(out, "uid:"+fmtAccountID(*u.UID))
		}
		return out
	}
	return u.groupUIDs("leaving-")
}

// Requires names the groups an existing user is put in: a group resource
// that manages one of them is applied first.
func (u *User) Requires() []string {
	if u.absent() {
		return nil
	}
	return u.groupUIDs("")
}

// groupUIDs returns the automatic-edge names of the groups the user names,
// each with prefix.
func (u *User) groupUIDs(prefix string) []string {
	var out []string
	if u.GID != nil {
		out = append(out, prefix+"gid:"+strconv.FormatUint(uint64(*u.GID), 10))
	}
	if u.Group != nil {
		out = append(out, prefix+"group:"+*u.Group)
	}
	for _, g := range u.Groups {
		out = append(out, prefix+"group:"+g)
	}
	return out
}

// Claims claims the user name and, unless it may be shared, the UID of a
// user that must exist.
func (u *User) Claims() []engine.Claim {
	c := []engine.Claim{{Space: "user", Name: u.name}}
	if !u.absent() && u.UID != nil && !u.AllowDuplicateUID {
		c = append(c, engine.Claim{Space: "uid", Name: fmtAccountID(*u.UID)})
	}
	return c
}
