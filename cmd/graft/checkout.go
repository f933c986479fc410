package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/graftcm/graft/api"
)

// checkoutDataDir is the data dir `make run` gives the agent, in the
// checkout; client commands find that agent from the checkout and below.
const checkoutDataDir = ".graft"

// checkoutSearch is what looking for make run's agent found: the socket of
// the agent to use, or what was found and not used, and why.
type checkoutSearch struct {
	from     string   // the directory the search started in
	sock     string   // the socket of the agent found; "" if none
	rejected []string // each .graft found and not used, and why
	stopped  string   // why the search stopped below the root; "" if it did not
}

// findCheckoutAgent looks for an agent running on a .graft data dir in dir
// or the nearest of its parents that has one. It walks dir's real path
// (no symbolic links) up, and stops below a directory that another user
// could have put a .graft in (see distrust). A .graft counts only if it is
// a directory, not a symbolic link (which can be repointed), this user's
// and closed to others, as graft makes it; and its socket only if this
// user's or root's process serves it (api.DialUnix checks that on every
// connection). Anything else could be another user's, and would receive
// what this user writes.
func findCheckoutAgent(ctx context.Context, dir string) checkoutSearch {
	s := checkoutSearch{from: dir}
	phys, err := filepath.EvalSymlinks(dir)
	if err != nil {
		s.stopped = fmt.Sprintf("could not resolve %s: %v", dir, err)
		return s
	}
	for dir = phys; ; dir = filepath.Dir(dir) {
		if why := distrust(dir); why != "" {
			s.stopped = fmt.Sprintf("did not look for a %s dir in %s or above it: %s", checkoutDataDir, dir, why)
			return s
		}
		sock, rejected := checkoutAgent(ctx, filepath.Join(dir, checkoutDataDir))
		if sock != "" {
			s.sock = sock
			return s
		}
		if rejected != "" {
			s.rejected = append(s.rejected, rejected)
		}
		if filepath.Dir(dir) == dir {
			return s
		}
	}
}

// distrust says why a .graft in dir might not be what this user or root
// put there, or returns "": dir belongs to neither, or another user can
// write to it (and so put a .graft there, or swap one). A directory
// writable by this user's own group (a user private group, with umask
// 002) is trusted.
func distrust(dir string) string {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	switch {
	case !ok:
		return "graft cannot tell who owns it"
	case !fi.IsDir():
		return "it is not a directory (a symbolic link put there since?)"
	case int(st.Uid) != os.Geteuid() && st.Uid != 0:
		return fmt.Sprintf("it belongs to %s, neither you nor root", userName(int(st.Uid)))
	case perm&0o002 != 0:
		return "every user can write to it"
	case perm&0o020 != 0 && int(st.Gid) != os.Getegid():
		return fmt.Sprintf("group %s can write to it", groupName(int(st.Gid)))
	}
	return ""
}

// checkoutAgent returns the socket of an agent running on the .graft data
// dir dd, or else why dd is not used ("" if there is no dd).
func checkoutAgent(ctx context.Context, dd string) (sock, rejected string) {
	fi, err := os.Lstat(dd)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ""
	}
	notUsed := "found " + dd + " but did not use it: "
	if err != nil {
		return "", notUsed + err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "", notUsed + "it is a symbolic link, which anyone who can write to its directory could repoint; " +
			"graft uses only a directory there"
	case !fi.IsDir():
		return "", notUsed + "it is not a directory"
	case !ok:
		return "", notUsed + "graft cannot tell who owns it"
	case int(st.Uid) != os.Geteuid():
		why := fmt.Sprintf("it belongs to %s, not to you (uid %d)", userName(int(st.Uid)), os.Geteuid())
		if st.Uid == 0 {
			why += "; if root's agent runs on it (`sudo make run`), run this command with sudo too"
		}
		return "", notUsed + why
	case fi.Mode().Perm()&0o077 != 0:
		return "", notUsed + fmt.Sprintf("it is open to other users (mode %04o), and graft makes its data dir 0700",
			fi.Mode().Perm())
	}
	sock = filepath.Join(dd, apiSocket)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := api.DialUnix(ctx, sock)
	var op *net.OpError
	switch {
	case errors.As(err, &op):
		return "", fmt.Sprintf("found %s but no agent answers on its socket (%v)", dd, op.Err)
	case err != nil:
		return "", notUsed + strings.TrimPrefix(err.Error(), "api: ")
	}
	conn.Close()
	return sock, ""
}

// userName names the user uid: "user NAME (uid N)", or "uid N" if the
// system does not know it.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// groupName names the group gid: "NAME (gid N)", or "gid N" if the system
// does not know it.
func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return fmt.Sprintf("%s (gid %d)", g.Name, gid)
	}
	return fmt.Sprintf("gid %d", gid)
}

// explain adds to err, the error of no agent answering at the default
// socket, what the search for make run's agent found, and what to do.
func (s checkoutSearch) explain(err error) error {
	hint := "is the agent running? start one with `graft run` or, in a checkout, `make run`; for another, " +
		"give --data-dir or --api (one started with --tmp-prefix logs its socket)"
	if s.sock != "" {
		return fmt.Errorf("%w (make run's agent, found from %s: is it still running?)", err, s.from)
	}
	var lines []string
	switch {
	case s.from == "":
		lines = append(lines, s.stopped)
	case len(s.rejected) == 0:
		nor := fmt.Sprintf("nor did graft find an agent on a %s dir (make run's) in %s or a parent directory", checkoutDataDir, s.from)
		if s.stopped != "" {
			nor += " (" + s.stopped + ")"
		}
		lines = append(lines, nor)
	default:
		lines = append(lines, s.rejected...)
		if s.stopped != "" {
			lines = append(lines, s.stopped)
		}
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(append(lines, hint), "\n"))
}
