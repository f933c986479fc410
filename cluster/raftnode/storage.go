package raftnode

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Errors of the node's storage, for callers that must tell them apart.
var (
	// ErrDamagedState means the raft state in the data dir cannot be read
	// back as it was written (a truncated or corrupted raft.db or
	// snapshot): the node refuses to start on it. The error names the
	// file and how to recover.
	ErrDamagedState = errors.New("cluster: raft state damaged")
	// ErrNoSpace means the data dir's file system is full: the write was
	// not applied. The node accepts writes again once space is freed.
	ErrNoSpace = errors.New("cluster: no space left in the data dir")
	// ErrReadOnly means the data dir is on a read-only file system.
	ErrReadOnly = errors.New("cluster: the data dir is read-only")
)

// damaged is the error of a node whose raft state (in raftDir) holds a
// damaged file, found at start: what is wrong with it and how to recover.
func damaged(raftDir, file string, err error) error {
	return damage(raftDir, file, "the node does not start on it", err)
}

// damage is the error of a node whose raft state (in raftDir) holds a
// damaged file: what is wrong with it, what the node does (done), and how
// to recover.
func damage(raftDir, file, done string, err error) error {
	return fmt.Errorf("%w: %s: %w; %s. If the other nodes of its cluster run, move %s "+
		"aside (mv %s %s.damaged) and start this node again: it rejoins empty and receives the cluster's state from "+
		"the leader. If it was the cluster's only node, restore %s from a backup",
		ErrDamagedState, file, err, done, raftDir, raftDir, raftDir, raftDir)
}

// readOnly is the error of a data dir that cannot be written for being on
// a read-only file system, nil for any other error.
func readOnly(dataDir string, err error) error {
	if !errors.Is(err, syscall.EROFS) {
		return nil
	}
	return fmt.Errorf("%w: %s is on a read-only file system, and the node keeps its raft state there: "+
		"remount it read-write, or give the node a data dir it can write (%w)", ErrReadOnly, dataDir, err)
}

// notDamage reports whether an error opening a raft store says nothing of
// its content: another process holds it, or this one may not open it.
func notDamage(err error) bool {
	return errors.Is(err, bbolt.ErrTimeout) || errors.Is(err, fs.ErrPermission)
}

// guarded runs f, turning a panic (bbolt panics on some bad pages) or a
// memory fault (reading past the end of a truncated, memory-mapped file)
// into an error.
func guarded(f func() error) error {
	_, err := recovered(f)
	return err
}

// recovered runs f as guarded does, and reports whether it panicked or
// faulted.
func recovered(f func() error) (panicked bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			panicked, err = true, fmt.Errorf("reading it failed: %v", r)
		}
	}()
	return false, f()
}

// checkState checks the raft state in dir (the data dir's raft
// directory) before raft opens it: every page and log entry of raft.db
// reads back, and the newest snapshot is whole. Raft would panic on a bad
// page or a missing entry, and would pass over a damaged snapshot to
// start from an older one (or none) whose log it compacted away.
func checkState(dir string) error {
	db := filepath.Join(dir, "raft.db")
	if err := checkRaftDB(db); err != nil {
		if notDamage(err) {
			return fmt.Errorf("cluster: raft store %s: %w", db, err)
		}
		return damaged(dir, db, err)
	}
	return checkSnapshots(dir)
}

// checkRaftDB reads every key of the bolt file path (none if it does not
// exist or is empty: raft then starts afresh), and every log entry.
func checkRaftDB(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return nil
	} else if err != nil {
		return err
	}
	opts := &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second}
	return guarded(func() error {
		db, err := bbolt.Open(path, 0o600, opts)
		if err != nil {
			return err
		}
		defer db.Close()
		err = db.View(func(tx *bbolt.Tx) error {
			// bolt grows the file before it writes a page: one shorter
			// than its pages was cut short, even if what was cut held
			// free pages only.
			if tx.Size() > fi.Size() {
				return fmt.Errorf("it is %d bytes long, shorter than the %d bytes of its pages: it was truncated",
					fi.Size(), tx.Size())
			}
			return walkRaftDB(tx)
		})
		if err != nil {
			return err
		}
		store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: opts})
		if err != nil {
			return err
		}
		defer store.Close()
		return readLogs(store)
	})
}

// walkRaftDB reads every key and value of raft-boltdb's buckets and checks
// that the log's indexes have no gap.
func walkRaftDB(tx *bbolt.Tx) error {
	for _, name := range []string{"logs", "conf"} {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("it has no %q bucket", name)
		}
		var prev uint64
		err := b.ForEach(func(k, v []byte) error {
			if name != "logs" {
				return nil
			}
			if len(k) != 8 {
				return fmt.Errorf("log key %x is not an index", k)
			}
			i := binary.BigEndian.Uint64(k)
			if prev != 0 && i != prev+1 {
				return fmt.Errorf("its log jumps from entry %d to %d", prev, i)
			}
			prev = i
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readLogs decodes every entry of the log in store.
func readLogs(store raft.LogStore) error {
	first, err := store.FirstIndex()
	if err != nil {
		return err
	}
	last, err := store.LastIndex()
	if err != nil {
		return err
	}
	for i := first; i <= last && last > 0; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return fmt.Errorf("log entry %d: %w", i, err)
		}
		if l.Index != i {
			return fmt.Errorf("log entry %d says it is entry %d", i, l.Index)
		}
	}
	return nil
}

// snapshotMeta is what raft's file snapshot store writes in meta.json.
type snapshotMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// checkSnapshots checks that every snapshot's meta.json in dir/snapshots
// reads, and that the newest snapshot's state.bin is whole (its size and
// checksum are those meta.json records): the one raft restores.
func checkSnapshots(dir string) error {
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("cluster: reading the raft snapshots: %w", err)
	}
	var newest *snapshotMeta
	var newestDir string
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") { // raft's snapshots being written
			continue
		}
		p := filepath.Join(dir, "snapshots", e.Name(), "meta.json")
		m, err := readSnapshotMeta(p)
		if err != nil {
			return damaged(dir, p, err)
		}
		if newest == nil || newerSnapshot(m, newest) {
			newest, newestDir = m, filepath.Dir(p)
		}
	}
	if newest == nil {
		return nil
	}
	state := filepath.Join(newestDir, "state.bin")
	if err := checkSnapshotState(state, newest); err != nil {
		return damaged(dir, state, err)
	}
	return nil
}

func readSnapshotMeta(path string) (*snapshotMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m snapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not a snapshot's metadata: %w", err)
	}
	if m.ID != filepath.Base(filepath.Dir(path)) || len(m.CRC) != 8 || m.Version < raft.SnapshotVersionMin ||
		m.Version > raft.SnapshotVersionMax {
		return nil, fmt.Errorf("not a snapshot's metadata (ID %q, version %d, %d-byte checksum)", m.ID, m.Version, len(m.CRC))
	}
	return &m, nil
}

// newerSnapshot orders snapshots as raft does: by term, index and ID.
func newerSnapshot(a, b *snapshotMeta) bool {
	if c := cmp.Compare(a.Term, b.Term); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
}

// checkSnapshotState checks a snapshot's state file against its metadata.
func checkSnapshotState(path string, m *snapshotMeta) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if n != m.Size {
		return fmt.Errorf("it holds %d bytes, and its meta.json says %d", n, m.Size)
	}
	if string(h.Sum(nil)) != string(m.CRC) {
		return errors.New("its checksum is not the one its meta.json records")
	}
	return nil
}
