package resources

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// leftoverKillTimeout bounds how long a restarted agent waits for the
// processes an earlier run left to die once killed.
const leftoverKillTimeout = 5 * time.Second

// execRuns records, one file per running command under a directory, the
// process groups of the commands that exec resources run, so that an agent
// restarted after being killed kills whatever its earlier run left before
// it runs a command again.
//
// Normally nothing is left: the guard (see guard.go) kills its group when
// the agent dies. The records cover the rest: a restart that comes before
// the guard has finished, and a guard killed together with the agent.
//
// A record holds the group's ID (the guard's pid), the guard's start time
// and a random token that the guard puts in the command's environment,
// where every process it starts inherits it. A process is taken for a
// leftover only if it is in the group and either the guard with that start
// time still leads the group or its own environment carries the token, so
// a reused pid is never mistaken for one. Processes that left the group on
// purpose (setsid, setpgid) are not leftovers: they detached themselves, as
// a daemon does.
//
// The agent's data dir is locked, so every record present when an agent
// starts is an earlier run's.
type execRuns struct {
	dir string

	mu     sync.Mutex
	loaded bool
	// stuck holds, by resource, the records of earlier runs whose
	// processes could not all be killed: the resource runs nothing until
	// they are gone.
	stuck map[string][]runRecord
}

// runRecord is one running command, as recorded.
type runRecord struct {
	Resource string `json:"resource"`
	Token    string `json:"token"`
	PGID     int    `json:"pgid"`
	// Start is the guard's start time in clock ticks after boot, as
	// /proc/PID/stat gives it.
	Start uint64 `json:"start"`
}

func newExecRuns(dir string) *execRuns {
	return &execRuns{dir: dir, stuck: map[string][]runRecord{}}
}

func (r *execRuns) path(token string) string { return filepath.Join(r.dir, token+".json") }

// begin makes sure that nothing an earlier run of the agent started for
// resource owner still runs, killing what does, and returns a token for a
// new run. The first call handles every record an earlier run left.
func (r *execRuns) begin(owner string, log *slog.Logger) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		if err := r.reapAll(log); err != nil {
			return "", fmt.Errorf("runs of earlier agents: %w", err)
		}
		r.loaded = true
	}
	if recs := r.stuck[owner]; len(recs) > 0 {
		var still []runRecord
		var pids []int
		for _, rec := range recs {
			if left := r.reap(rec, log); len(left) > 0 {
				still = append(still, rec)
				pids = append(pids, left...)
			}
		}
		r.stuck[owner] = still
		if len(still) > 0 {
			return "", fmt.Errorf("%w: could not kill pids %v", ErrLeftoverRunning, pids)
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// record writes down the run token of resource owner, whose guard leads
// group pgid. It must be written before the guard gets its go-ahead.
func (r *execRuns) record(token, owner string, pgid int) error {
	st, err := readProcStat(pgid)
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	data, err := json.Marshal(runRecord{Resource: owner, Token: token, PGID: pgid, Start: st.start})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	if err := os.WriteFile(r.path(token), data, 0o600); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	return nil
}

// end removes the record of a run whose group is dead.
func (r *execRuns) end(token string) error {
	err := os.Remove(r.path(token))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// reapAll kills what the runs recorded under the directory left, and keeps
// the records of those it could not kill.
func (r *execRuns) reapAll(log *slog.Logger) error {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		p := filepath.Join(r.dir, ent.Name())
		var rec runRecord
		data, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil || rec.PGID <= 0 || rec.Token+".json" != ent.Name() {
			// Written by an agent killed before the guard's go-ahead:
			// that guard never started its command.
			log.Warn("removing an unreadable run record", "file", p, "err", err)
			if err := os.Remove(p); err != nil {
				return err
			}
			continue
		}
		if left := r.reap(rec, log); len(left) > 0 {
			r.stuck[rec.Resource] = append(r.stuck[rec.Resource], rec)
		}
	}
	return nil
}

// reap kills what is left of the recorded run and removes its record once
// nothing is. It returns the pids it could not kill.
func (r *execRuns) reap(rec runRecord, log *slog.Logger) []int {
	killed, left, err := killRun(rec)
	if len(killed) > 0 {
		log.Warn("killed processes an earlier run of the agent left running",
			"resource", rec.Resource, "pgid", rec.PGID, "pids", killed)
	}
	if err == nil && len(left) == 0 {
		if err := r.end(rec.Token); err != nil {
			log.Warn("could not remove a run record", "resource", rec.Resource, "err", err)
		}
		return nil
	}
	log.Error("processes an earlier run of the agent left are still running; its commands will not run until they are gone",
		"resource", rec.Resource, "pgid", rec.PGID, "pids", left, "err", err)
	if len(left) == 0 {
		left = []int{rec.PGID}
	}
	return left
}

// killRun kills the processes the recorded run left and waits until they
// are gone (or zombies), or until leftoverKillTimeout. It returns the pids
// it killed and those still alive. Nothing notifies about the death of
// another process's child, so it polls.
func killRun(rec runRecord) (killed, left []int, err error) {
	deadline := time.Now().Add(leftoverKillTimeout)
	seen := map[int]bool{}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		pids, leaderAlive, err := runMembers(rec)
		if err != nil {
			return slices.Sorted(maps.Keys(seen)), pids, err
		}
		if len(pids) == 0 {
			return slices.Sorted(maps.Keys(seen)), nil, nil
		}
		for _, pid := range pids {
			seen[pid] = true
		}
		if leaderAlive {
			// The guard leads the group and is not reaped: the whole
			// group is the run's, even processes whose environment
			// cannot be read.
			_ = signalGroup(rec.PGID, syscall.SIGKILL)
		} else {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return slices.Sorted(maps.Keys(seen)), pids, nil
		}
		<-tick.C
	}
}

// runMembers lists the live processes of the recorded run: those in its
// group, if the recorded guard still leads it, else those in its group
// whose environment carries its token.
func runMembers(rec runRecord) (pids []int, leaderAlive bool, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false, err
	}
	var group []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.pgrp != rec.PGID || st.state == 'Z' || st.state == 'X' {
			continue // gone, not in the group, or dead
		}
		if pid == rec.PGID && st.start == rec.Start {
			leaderAlive = true
		}
		group = append(group, pid)
	}
	if leaderAlive {
		return group, true, nil
	}
	for _, pid := range group {
		if hasRunToken(pid, rec.Token) {
			pids = append(pids, pid)
		}
	}
	return pids, false, nil
}

// procStat is what graft reads from /proc/PID/stat.
type procStat struct {
	state byte
	pgrp  int
	start uint64 // clock ticks after boot
}

// readProcStat reads the state, process group and start time of pid.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name, in parentheses, may hold anything: the fields
	// after it are counted from its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+2:])) // f[0] is field 3, the state
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: process group: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// hasRunToken reports whether pid's environment, as it was when the
// process started, carries the run token. A process whose environment
// cannot be read (another user's) does not.
func hasRunToken(pid int, token string) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := []byte(runEnv + "=" + token + "\x00")
	return bytes.HasPrefix(env, want) || bytes.Contains(env, append([]byte{0}, want...))
}
