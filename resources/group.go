package resources

import (
	"context"
	"fmt"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// Group manages a local group, named by the resource name, through the
// shadow tools: groupadd creates it, groupmod changes its GID, groupdel
// removes it. Its members are managed by the user resources that name it.
type Group struct {
	// State is "exists" (the default when empty) or "absent". groupdel
	// refuses to remove the primary group of an existing user; the error
	// says so.
	State string `yaml:"state"`
	// GID is the group's id; unset leaves it to groupadd. Another group
	// holding it is an error.
	GID *uint32 `yaml:"gid"`

	name  string
	hub   *fswatch.Hub
	tools *shadowTools
	rt    *engine.Runtime
}

func (g *Group) absent() bool { return g.State == stateAbsent }

// Validate checks the parameters without looking at the host.
func (g *Group) Validate() error {
	if err := checkAccountName("name", "group", g.name); err != nil {
		return err
	}
	switch g.State {
	case "", stateExists, stateAbsent:
	default:
		return engine.ParamErrorf("state", "%q is not one of exists or absent", g.State)
	}
	return checkAccountID("gid", g.GID)
}

// Init keeps the runtime.
func (g *Group) Init(rt *engine.Runtime) error {
	g.rt = rt
	return nil
}

// Cleanup does nothing.
func (g *Group) Cleanup() error { return nil }

// Watch reports every change of the group files.
func (g *Group) Watch(ctx context.Context) error {
	if err := watchAccountFiles(ctx, g.hub, g.rt, groupPath, gshadowPath); err != nil {
		return fmt.Errorf("group: %w", err)
	}
	return nil
}

// CheckApply brings the group to the declared state. With apply false it
// changes nothing and logs what it would change.
func (g *Group) CheckApply(ctx context.Context, apply bool) (bool, error) {
	db, err := readAccounts()
	if err != nil {
		return false, err
	}
	cur := db.group(g.name)
	if g.absent() {
		if cur == nil {
			return true, nil
		}
		return false, g.change(ctx, apply, "remove", "", "groupdel", g.name)
	}
	var args []string
	changes := ""
	if g.GID != nil {
		gid := fmtAccountID(*g.GID)
		if other := db.groupByGID(*g.GID); other != nil && other.name != g.name {
			return false, fmt.Errorf("gid: %s belongs to group %q", gid, other.name)
		}
		if cur == nil || cur.gid != *g.GID {
			args = []string{"-g", gid}
			changes = "gid " + gid
			if cur != nil {
				changes = "gid " + fmtAccountID(cur.gid) + " -> " + gid
			}
		}
	}
	switch {
	case cur == nil:
		return false, g.change(ctx, apply, "create", changes, "groupadd", append(args, g.name)...)
	case len(args) > 0:
		return false, g.change(ctx, apply, "modify", changes, "groupmod", append(args, g.name)...)
	}
	return true, nil
}

// change logs a change and, with apply, makes it with tool.
func (g *Group) change(ctx context.Context, apply bool, action, changes, tool string, args ...string) error {
	msg := "changing group"
	if !apply {
		msg = "would change"
	}
	attrs := []any{"group", g.name, "action", action}
	if changes != "" {
		attrs = append(attrs, "changes", changes)
	}
	g.rt.Logger.Info(msg, attrs...)
	if !apply {
		return nil
	}
	return g.tools.run(ctx, tool, args...)
}

// Provides names the group by name and, if given, by GID, for the users
// that are put in it.
func (g *Group) Provides() []string {
	out := []string{"group:" + g.name}
	if g.GID != nil {
		out = append(out, "gid:"+fmtAccountID(*g.GID))
	}
	return out
}

// Requires names the removed users that name this group: they go first.
func (g *Group) Requires() []string {
	out := []string{"leaving-group:" + g.name}
	if g.GID != nil {
		out = append(out, "leaving-gid:"+fmtAccountID(*g.GID))
	}
	return out
}

// Claims claims the group name and, for a group that must exist with a
// given GID, that GID.
func (g *Group) Claims() []engine.Claim {
	c := []engine.Claim{{Space: "group", Name: g.name}}
	if !g.absent() && g.GID != nil {
		c = append(c, engine.Claim{Space: "gid", Name: fmtAccountID(*g.GID)})
	}
	return c
}
