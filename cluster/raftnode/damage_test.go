package raftnode_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// writeKeys writes keys k0..k(count-1) through n, each with a value of
// size bytes.
//
// A write whose outcome is unknown (ErrAmbiguous: under load the leader
// may lose its leadership while committing it, which raft allows) is made
// again: a put of the same value changes nothing if it was applied.
func writeKeys(t *testing.T, n *raftnode.Node, prefix string, count, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i := range count {
		cmd := put(fmt.Sprintf("%s%d", prefix, i), strings.Repeat("v", size))
		_, err := n.Apply(ctx, cmd)
		for errors.Is(err, raftnode.ErrAmbiguous) && ctx.Err() == nil {
			_, err = n.Apply(ctx, cmd)
		}
		if err != nil {
			t.Fatalf("write %s%d: %v", prefix, i, err)
		}
	}
}

// soloState makes a data dir holding a one-node cluster's state: 300
// writes, so raft's snapshots (every 64 entries in TestConfig) and a
// compacted log.
func soloState(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	n := openNode(t, "solo", dir, true)
	waitLeader(t, n)
	writeKeys(t, n, "k", 300, 100)
	waitFor(t, "a snapshot", func() bool { return len(snapshotDirs(t, dir)) > 0 })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snapshotDirs lists the snapshots in dir's raft state, oldest first.
func snapshotDirs(t *testing.T, dir string) []string {
	t.Helper()
	snaps, err := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range snaps {
		if !strings.HasSuffix(s, ".tmp") {
			out = append(out, s)
		}
	}
	// raft names them term-index-milliseconds: in order as numbers, not
	// as text ("2-128-..." sorts before "2-64-...").
	key := func(path string) (k [3]uint64) {
		for i, f := range strings.SplitN(filepath.Base(path), "-", 3) {
			k[i], _ = strconv.ParseUint(f, 10, 64)
		}
		return k
	}
	slices.SortFunc(out, func(a, b string) int {
		ka, kb := key(a), key(b)
		return cmp.Or(cmp.Compare(ka[0], kb[0]), cmp.Compare(ka[1], kb[1]), cmp.Compare(ka[2], kb[2]))
	})
	return out
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// damageFile rewrites path with what damage makes of its content.
func damageFile(t *testing.T, path string, damage func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damage(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// boltPagesSize is how many bytes of the bolt file at path its pages
// take (its high-water mark), which may be less than the file's size.
func boltPagesSize(t *testing.T, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	if err := db.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return int(size)
}

// garbageAfter overwrites b from off on with bytes no bolt page or JSON
// has.
func garbageAfter(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		for i := off; i < len(b); i++ {
			b[i] = byte(0xA5 ^ i)
		}
		return b
	}
}

// A damaged raft.db or snapshot makes the node refuse to start, never
// panic nor start on a wrong state, with an error naming the file and the
// way to recover from the cluster.
func TestDamagedRaftStateIsRefusedNamingTheFileAndTheWayBack(t *testing.T) {
	newest := func(t *testing.T, dir, name string) string {
		snaps := snapshotDirs(t, dir)
		return filepath.Join(snaps[len(snaps)-1], name)
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string) string // damages dir's raft state, returns the file damaged
	}{
		{"raft.db truncated to half its pages", func(t *testing.T, dir string) string {
			// Half of its pages, not of the file: bolt grows the file
			// ahead of its pages (to its memory map's size), and a file
			// cut in the free space past them has lost nothing.
			p := filepath.Join(dir, "raft", "raft.db")
			used := boltPagesSize(t, p)
			damageFile(t, p, func(b []byte) []byte { return b[:used/2] })
			return p
		}},
		{"raft.db truncated to one page", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "raft", "raft.db")
			damageFile(t, p, func(b []byte) []byte { return b[:4096] })
			return p
		}},
		{"raft.db pages overwritten", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "raft", "raft.db")
			damageFile(t, p, garbageAfter(2*4096)) // all but the two meta pages
			return p
		}},
		{"raft.db meta pages overwritten", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "raft", "raft.db")
			damageFile(t, p, func(b []byte) []byte { garbageAfter(0)(b[:2*4096]); return b })
			return p
		}},
		{"snapshot state truncated", func(t *testing.T, dir string) string {
			p := newest(t, dir, "state.bin")
			damageFile(t, p, func(b []byte) []byte { return b[:len(b)/2] })
			return p
		}},
		{"snapshot state corrupted", func(t *testing.T, dir string) string {
			p := newest(t, dir, "state.bin")
			damageFile(t, p, func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b })
			return p
		}},
		{"snapshot meta.json truncated", func(t *testing.T, dir string) string {
			p := newest(t, dir, "meta.json")
			damageFile(t, p, func(b []byte) []byte { return b[:len(b)/2] })
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := soloState(t)
			file := tc.damage(t, dir)
			cfg := raftnode.TestConfig()
			cfg.NodeID, cfg.DataDir = "solo", dir
			n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
			if err == nil {
				defer n.Close()
				waitLeader(t, n)
				if err := n.Linearize(t.Context()); err != nil {
					t.Fatalf("the node started on its damaged state, and cannot read it: %v", err)
				}
				kvs, _ := n.FSM().List("k", 0)
				t.Fatalf("the node started on its damaged state, holding %d of its 300 keys", len(kvs))
			}
			raftDir := filepath.Join(dir, "raft")
			if !errors.Is(err, raftnode.ErrDamagedState) {
				t.Errorf("error %q is not ErrDamagedState", err)
			}
			for _, want := range []string{file, "mv " + raftDir + " " + raftDir + ".damaged", "rejoins empty"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// The way back that a damaged node's error names works: the node, its
// raft state moved aside as told, rejoins its running cluster empty and
// gets the cluster's state from the leader, and takes writes again.
func TestNodeWithDamagedStateRejoinsEmptyAsItsErrorSays(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	a, _, c := openThree(t, dirs[0], dirs[1], dirs[2])
	writeKeys(t, a, "k", 200, 100)
	waitFor(t, "c to apply the writes", func() bool { _, ok := c.FSM().Get("k199"); return ok })
	addr := c.Addr()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, a, "while-down", 100, 100) // c must get these from the leader
	db := filepath.Join(dirs[2], "raft", "raft.db")
	damageFile(t, db, garbageAfter(2*4096))

	cfg := raftnode.TestConfig()
	cfg.NodeID, cfg.DataDir, cfg.BindAddr = "c", dirs[2], addr
	_, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if !errors.Is(err, raftnode.ErrDamagedState) {
		t.Fatalf("start on a damaged raft.db: %v, want ErrDamagedState", err)
	}
	mv := regexp.MustCompile(`\(mv (\S+) (\S+)\)`).FindStringSubmatch(err.Error())
	if mv == nil {
		t.Fatalf("error %q names no mv command", err)
	}
	if err := os.Rename(mv[1], mv[2]); err != nil {
		t.Fatalf("following the error's mv: %v", err)
	}
	c, err = raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if err != nil {
		t.Fatalf("start with the raft state moved aside: %v", err)
	}
	defer c.Close()
	waitFor(t, "c to receive the cluster's state", func() bool {
		_, ok := c.FSM().Get("while-down99")
		return ok
	})
	for _, k := range []string{"k0", "k199", "while-down0"} {
		if _, ok := c.FSM().Get(k); !ok {
			t.Errorf("c lacks %s after rejoining", k)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Apply(ctx, put("after", "rejoin")); err != nil {
		t.Errorf("write through c after it rejoined: %v", err)
	}
}

// A data dir on a read-only mount, empty or holding a node's state, is
// refused at start with ErrReadOnly, naming the dir.
func TestReadOnlyDataDirIsRefusedNamingIt(t *testing.T) {
	for name, src := range map[string]string{"empty": t.TempDir(), "with state": soloState(t)} {
		t.Run(name, func(t *testing.T) {
			dir := bindReadOnly(t, src)
			cfg := raftnode.TestConfig()
			cfg.NodeID, cfg.DataDir, cfg.Bootstrap = "solo", dir, true
			n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
			if err == nil {
				n.Close()
				t.Fatal("the node started on a read-only data dir")
			}
			if !errors.Is(err, raftnode.ErrReadOnly) {
				t.Errorf("error %q is not ErrReadOnly", err)
			}
			for _, want := range []string{dir, "read-only file system"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// A raft.db that another process holds open is not called damaged: the
// error says what holds the start up, and moving the state aside is not
// suggested.
func TestRaftStoreHeldElsewhereIsNotCalledDamaged(t *testing.T) {
	dir := soloState(t)
	path := filepath.Join(dir, "raft", "raft.db")
	held, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := raftnode.TestConfig()
	cfg.NodeID, cfg.DataDir = "solo", dir
	n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if err == nil {
		n.Close()
		t.Fatal("the node opened a raft.db another holder has locked")
	}
	if errors.Is(err, raftnode.ErrDamagedState) || !errors.Is(err, bbolt.ErrTimeout) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want bolt's timeout naming %s, not ErrDamagedState", err, path)
	}
}
