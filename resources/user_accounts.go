package resources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// The account databases the shadow tools edit. user and group resources
// read the first two and watch all four: the tools replace each file by
// renaming a new copy over it, so the watch is on the name in /etc.
const (
	passwdPath  = "/etc/passwd"
	groupPath   = "/etc/group"
	shadowPath  = "/etc/shadow"
	gshadowPath = "/etc/gshadow"
)

// ErrNoShadowTool is wrapped by the error of a user or group resource that
// has to change an account on a host without the shadow tool it needs
// (useradd, usermod, userdel, groupadd, groupmod or groupdel).
var ErrNoShadowTool = errors.New("shadow tool not found")

// noAccountID is (uid_t)-1, which the kernel and the shadow tools take to mean
// "no id": it cannot be given to an account.
const noAccountID = 1<<32 - 1

// maxAccountName is the longest user or group name the shadow tools accept
// on common systems.
const maxAccountName = 32

// checkAccountName refuses a user or group name that the shadow tools would
// refuse or that could not be written into /etc/passwd or /etc/group: it
// must be 1 to 32 characters, start with a lower-case letter or "_", go on
// with lower-case letters, digits, "_", "-" or ".", and may end in "$"
// (Samba machine accounts). field names the parameter in the error.
func checkAccountName(field, kind, name string) error {
	const want = "want 1 to 32 characters: a lower-case letter or _, then lower-case letters, digits, _, - or ., and at most a final $"
	if name == "" {
		return engine.ParamErrorf(field, "the %s name is empty; %s", kind, want)
	}
	if len(name) > maxAccountName {
		return engine.ParamErrorf(field, "%q is not a valid %s name: it is %d characters long; %s", name, kind, len(name), want)
	}
	body := strings.TrimSuffix(name, "$")
	for i, c := range body {
		ok := c == '_' || (c >= 'a' && c <= 'z') ||
			(i > 0 && (c == '-' || c == '.' || (c >= '0' && c <= '9')))
		if !ok {
			return engine.ParamErrorf(field, "%q is not a valid %s name: %q at position %d; %s", name, kind, c, i+1, want)
		}
	}
	if body == "" {
		return engine.ParamErrorf(field, "%q is not a valid %s name; %s", name, kind, want)
	}
	return nil
}

// checkAccountID refuses the one id no account can have.
func checkAccountID(field string, id *uint32) error {
	if id != nil && *id == noAccountID {
		return engine.ParamErrorf(field, "%d is reserved (it means no id); want 0 to %d", *id, noAccountID-1)
	}
	return nil
}

// passwdEntry is one line of /etc/passwd, the fields graft manages.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// accounts is what /etc/passwd and /etc/group held when they were read.
type accounts struct {
	users  []passwdEntry
	groups []groupEntry
}

// readAccounts reads the local account databases. Only local accounts are
// seen: they are the ones the shadow tools manage. A line that is not in
// the file's format is an error naming the file and the line.
func readAccounts() (*accounts, error) {
	a := &accounts{}
	err := readColonFile(passwdPath, 7, func(f []string) error {
		uid, gid, err := parseAccountIDs(f[2], f[3])
		if err != nil {
			return err
		}
		a.users = append(a.users, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readColonFile(groupPath, 4, func(f []string) error {
		gid, _, err := parseAccountIDs(f[2], "0")
		if err != nil {
			return err
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		a.groups = append(a.groups, groupEntry{name: f[0], gid: gid, members: members})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// readColonFile calls line with the fields of each entry of a file in the
// format of /etc/passwd, which must have n fields. Blank lines, comments and
// NIS compat entries (+ and -) are skipped.
func readColonFile(path string, n int, line func([]string) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	for no := 1; sc.Scan(); no++ {
		text := sc.Text()
		if text == "" || text[0] == '#' || text[0] == '+' || text[0] == '-' {
			continue
		}
		f := strings.Split(text, ":")
		if len(f) != n {
			return fmt.Errorf("%s:%d: want %d fields separated by colons, got %d", path, no, n, len(f))
		}
		if err := line(f); err != nil {
			return fmt.Errorf("%s:%d: %w", path, no, err)
		}
	}
	return sc.Err()
}

func parseAccountIDs(a, b string) (uint32, uint32, error) {
	x, err := strconv.ParseUint(a, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("id %q is not a number", a)
	}
	y, err := strconv.ParseUint(b, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("id %q is not a number", b)
	}
	return uint32(x), uint32(y), nil
}

func (a *accounts) user(name string) *passwdEntry {
	for i := range a.users {
		if a.users[i].name == name {
			return &a.users[i]
		}
	}
	return nil
}

func (a *accounts) userByUID(uid uint32) *passwdEntry {
	for i := range a.users {
		if a.users[i].uid == uid {
			return &a.users[i]
		}
	}
	return nil
}

func (a *accounts) group(name string) *groupEntry {
	for i := range a.groups {
		if a.groups[i].name == name {
			return &a.groups[i]
		}
	}
	return nil
}

func (a *accounts) groupByGID(gid uint32) *groupEntry {
	for i := range a.groups {
		if a.groups[i].gid == gid {
			return &a.groups[i]
		}
	}
	return nil
}

// memberOf returns the names of the groups that list user as a member, in
// the order of /etc/group.
func (a *accounts) memberOf(user string) []string {
	var out []string
	for _, g := range a.groups {
		for _, m := range g.members {
			if m == user {
				out = append(out, g.name)
				break
			}
		}
	}
	return out
}

// shadowTools runs the shadow tools for the user and group resources of one
// registry, one at a time: the tools lock the account files and a second
// one started meanwhile would wait on the lock, or give up.
type shadowTools struct {
	mu sync.Mutex
	// fallback are searched, in order, for a tool not in PATH: an agent
	// started with a PATH that lacks the sbin directories still finds them.
	fallback []string
}

func newShadowTools() *shadowTools {
	return &shadowTools{fallback: []string{"/usr/sbin", "/sbin"}}
}

// find returns the path of tool.
func (s *shadowTools) find(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, dir := range s.fallback {
		p := filepath.Join(dir, tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	where := "PATH"
	if len(s.fallback) > 0 {
		where = "PATH, " + strings.Join(s.fallback, ", ")
	}
	return "", fmt.Errorf("%w: %s is not in %s; graft manages users and groups with the shadow tools "+
		"(useradd, usermod, userdel, groupadd, groupmod, groupdel): install them "+
		"(Debian, Ubuntu: package passwd; Fedora, RHEL: shadow-utils)", ErrNoShadowTool, tool, where)
}

// run runs tool with args, returning its output in the error if it fails.
// A cancelled ctx stops a tool from starting; once started, it runs to its
// end: killed halfway, a tool can leave an account in passwd without its
// shadow or group entries. The tools take well under a second, and give
// up on a held lock by themselves.
func (s *shadowTools) run(ctx context.Context, tool string, args ...string) error {
	path, err := s.find(tool)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s not started: %w", tool, context.Cause(ctx))
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if lines := strings.SplitN(msg, "\n", 4); len(lines) > 3 {
			msg = strings.Join(lines[:3], "\n") + "\n..." // a usage text
		}
		if msg == "" {
			return fmt.Errorf("%s %s: %w", tool, strings.Join(args, " "), err)
		}
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, msg)
	}
	return nil
}

// watchAccountFiles reports, until ctx is done, every change to the given account
// files through the shared file watcher.
func watchAccountFiles(ctx context.Context, hub *fswatch.Hub, rt *engine.Runtime, paths ...string) error {
	if hub == nil {
		return errors.New("no file watcher configured")
	}
	for _, p := range paths {
		cancel, err := hub.Watch(p, rt.Event)
		if err != nil {
			return err
		}
		defer cancel()
	}
	rt.Running()
	<-ctx.Done()
	return nil
}

// fmtAccountID formats a user or group id in decimal.
func fmtAccountID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
