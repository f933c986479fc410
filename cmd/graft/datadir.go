package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/graftcm/graft/cluster/raftnode"
)

// defaultDataDir is where an agent keeps its state when --data-dir is not
// given: /var/lib/graft for root, else the XDG state directory.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/graft"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "graft")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "graft")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("graft-%d", os.Geteuid()))
}

// dataDir is an agent's locked state directory.
type dataDir struct {
	path string
	lock *os.File
	tmp  bool
}

// openDataDir creates (mode 0700) and locks the data directory, so two agents
// never share one. With tmp set it makes a fresh temporary directory instead,
// removed by Close.
func openDataDir(path string, tmp bool) (*dataDir, error) {
	if tmp {
		p, err := os.MkdirTemp("", "graft-")
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		path = p
	} else if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, dataDirError(path, err)
	}
	// The data dir holds the cluster key and the raft state (some of it
	// written world-readable by raft's snapshot store): only its owner may
	// enter, even if someone made it before graft did.
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s is open to other users (mode %04o) and cannot be made private: %w",
				path, fi.Mode().Perm(), err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(path, "graft.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, dataDirError(path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another graft agent: stop that one "+
				"(graft leave --data-dir %s), or give this one another --data-dir", path, path)
		}
		return nil, fmt.Errorf("data dir: lock %s: %w", path, err)
	}
	return &dataDir{path: path, lock: lock, tmp: tmp}, nil
}

// dataDirError is the error of a data dir that cannot be made or written:
// a read-only file system is said so, with what to do.
func dataDirError(path string, err error) error {
	if errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%w: data dir %s is on a read-only file system, and graft keeps its state there "+
			"(raft log, cluster key, API socket): remount it read-write, or give another --data-dir (%w)",
			raftnode.ErrReadOnly, path, err)
	}
	return fmt.Errorf("data dir: %w", err)
}

// Close unlocks the directory and removes it if it was temporary.
func (d *dataDir) Close() error {
	err := d.lock.Close()
	if d.tmp {
		err = errors.Join(err, os.RemoveAll(d.path))
	}
	return err
}
