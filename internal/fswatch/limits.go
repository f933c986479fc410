package fswatch

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The limits a watch can run into.
const (
	// LimitInstances is the sysctl bounding each user's inotify instances.
	LimitInstances = "fs.inotify.max_user_instances"
	// LimitWatches is the sysctl bounding each user's inotify watches.
	LimitWatches = "fs.inotify.max_user_watches"
	// LimitNSInstances and LimitNSWatches are the same limits for a user
	// namespace (a container); where they are the lower, they apply.
	LimitNSInstances = "user.max_inotify_instances"
	LimitNSWatches   = "user.max_inotify_watches"
	// LimitOpenFiles is the process's limit on open files (ulimit -n).
	LimitOpenFiles = "RLIMIT_NOFILE"
)

// LimitError reports that a kernel limit stopped a watch, and how to raise
// it. It unwraps to the kernel's error (EMFILE or ENOSPC).
type LimitError struct {
	// Limit is LimitInstances, LimitWatches, LimitNSInstances,
	// LimitNSWatches or LimitOpenFiles.
	Limit string
	// Value is the limit's current value, or -1 if it could not be read.
	Value int64
	Err   error
}

func (e *LimitError) Error() string {
	now := ""
	if e.Value >= 0 {
		now = fmt.Sprintf(" (now %d)", e.Value)
	}
	switch e.Limit {
	case LimitOpenFiles:
		return fmt.Sprintf("%v: this process's limit on open files%s is reached; raise it with `ulimit -n`, "+
			"or LimitNOFILE= in the agent's systemd unit", e.Err, now)
	case LimitInstances, LimitWatches, LimitNSInstances, LimitNSWatches:
		what, floor := "instances", int64(512)
		if e.Limit == LimitWatches || e.Limit == LimitNSWatches {
			what, floor = "watches", 524288
		}
		where := ""
		if e.Limit == LimitNSInstances || e.Limit == LimitNSWatches {
			where = " (a limit of this user namespace, lower than the host's: raise it where the namespace " +
				"was made, on the host for a container)"
		}
		return fmt.Sprintf("%v: the user's inotify %s are used up: sysctl %s%s is reached%s; raise it with "+
			"`sysctl -w %s=%d`, and set it in a file under /etc/sysctl.d/ to keep it after a reboot",
			e.Err, what, e.Limit, now, where, e.Limit, max(2*e.Value, floor))
	}
	return fmt.Sprintf("%v: the limit %s%s is reached", e.Err, e.Limit, now)
}

func (e *LimitError) Unwrap() error { return e.Err }

// initLimit explains an error creating an inotify instance: EMFILE means
// either the user's instances or the process's open files are used up.
func initLimit(err error) error {
	if !errors.Is(err, syscall.EMFILE) {
		return err
	}
	if n, ok := openFilesLimit(); ok {
		return &LimitError{Limit: LimitOpenFiles, Value: n, Err: err}
	}
	name, n := inotifyLimit(LimitInstances, LimitNSInstances)
	return &LimitError{Limit: name, Value: n, Err: err}
}

// watchLimit explains an error adding an inotify watch: ENOSPC means the
// user's watches are used up.
func watchLimit(err error) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	name, n := inotifyLimit(LimitWatches, LimitNSWatches)
	return &LimitError{Limit: name, Value: n, Err: err}
}

// openFilesLimit reports whether the process has used up its open files,
// and that limit.
func openFilesLimit() (int64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return -1, false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if errors.Is(err, syscall.EMFILE) {
		return int64(rl.Cur), true // not even one more descriptor to read the list with
	}
	if err != nil {
		return -1, false
	}
	// The list counts the descriptor that read it, which is free again.
	return int64(rl.Cur), uint64(len(fds)) >= rl.Cur
}

// inotifyLimit returns whichever of the sysctls fsName (the host's) and
// nsName (the user namespace's, which binds inside a container) is lower,
// and its value: fsName and -1 if neither can be read.
func inotifyLimit(fsName, nsName string) (string, int64) {
	name, lowest := fsName, int64(-1)
	for _, sysctl := range []string{fsName, nsName} {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(sysctl, ".", "/"))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && (lowest < 0 || n < lowest) {
			name, lowest = sysctl, n
		}
	}
	return name, lowest
}
