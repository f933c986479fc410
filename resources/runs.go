package resources

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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
// processes an earlier run left to die once killed, each time one of its
// resources is to run a command.
const leftoverKillTimeout = 5 * time.Second

// bootIDPath holds the kernel's random ID of the current boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// execRuns records, one file per running command under a directory, the
// process groups of the commands that exec resources run, so that an agent
// restarted after being killed kills whatever its earlier run left before
// it runs a command again.
//
// Normally nothing is left: the guard (see guard.go) kills its group when
// the agent dies. The records cover the rest: a restart that comes before
// the guard has finished, and a guard killed together with the agent.
//
// A record holds the boot's ID, the group's ID (the guard's pid), the
// guard's start time and a random token that the guard puts in the
// command's environment, where every process it starts inherits it. A
// record of another boot is dropped without killing anything: its pids and
// start times mean nothing since. A process is taken for a leftover only if
// it is in the group and either the guard with that start time still leads
// the group or its own environment carries the token, so a reused pid is
// never mistaken for one. Processes that left the group on purpose
// (setsid, setpgid) are not leftovers: they detached themselves, as a
// daemon does.
//
// The agent's data dir is locked, so every record present when an agent
// starts is an earlier run's. The first begin reads them all and sends
// every leftover SIGKILL; each resource then waits, before its own next
// command, for its own leftovers to be gone. A resource whose leftovers
// will not die (a process stuck in the kernel) delays no other resource.
type execRuns struct {
	dir string
	// killTimeout is leftoverKillTimeout, and kill is syscall.Kill; tests
	// change them to model a process that does not die.
	killTimeout time.Duration
	kill        func(pid int, sig syscall.Signal) error

	mu     sync.Mutex
	loaded bool
	bootID string                // the current boot's; empty if unknown
	owners map[string]*ownerRuns // by resource
}

// ownerRuns is what one resource's earlier runs left.
type ownerRuns struct {
	// busy holds a value while a goroutine handles the leftovers: it is
	// a lock that a context can give up on.
	busy chan struct{}
	// left are the earlier runs whose processes may still run. Only the
	// goroutine that holds busy, or load, touches it.
	left []*leftover
}

// leftover is an earlier run whose processes may still run.
type leftover struct {
	rec    runRecord
	killed map[int]bool // the pids sent SIGKILL so far
}

// runRecord is one running command, as recorded.
type runRecord struct {
	Resource string `json:"resource"`
	Token    string `json:"token"`
	// BootID is the ID of the boot the command ran in.
	BootID string `json:"boot_id"`
	PGID   int    `json:"pgid"`
	// Start is the guard's start time in clock ticks after boot, as
	// /proc/PID/stat gives it.
	Start uint64 `json:"start"`
}

func newExecRuns(dir string) *execRuns {
	return &execRuns{dir: dir, killTimeout: leftoverKillTimeout, kill: syscall.Kill, owners: map[string]*ownerRuns{}}
}

func (r *execRuns) path(token string) string { return filepath.Join(r.dir, token+".json") }

// owner returns the state of resource owner. r.mu must be held.
func (r *execRuns) owner(owner string) *ownerRuns {
	o := r.owners[owner]
	if o == nil {
		o = &ownerRuns{busy: make(chan struct{}, 1)}
		r.owners[owner] = o
	}
	return o
}

// begin makes sure that nothing an earlier run of the agent started for
// resource owner still runs, killing what does, and returns a token for a
// new run. It gives up when ctx is done. The first call also reads every
// record an earlier run left and kills what each left.
func (r *execRuns) begin(ctx context.Context, owner string, log *slog.Logger) (string, error) {
	others, err := r.load(log)
	if err != nil {
		return "", fmt.Errorf("runs of earlier agents: %w", err)
	}
	for _, o := range others {
		r.sweep(ctx, o, log)
	}
	r.mu.Lock()
	o := r.owner(owner)
	r.mu.Unlock()
	select {
	case o.busy <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("wait for what an earlier run left: %w", context.Cause(ctx))
	}
	defer func() { <-o.busy }()
	if err := r.reapOwner(ctx, o, log); err != nil {
		return "", err
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
	r.mu.Lock()
	bootID := r.bootID
	r.mu.Unlock()
	data, err := json.Marshal(runRecord{Resource: owner, Token: token, BootID: bootID, PGID: pgid, Start: st.start})
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

// load reads, on its first successful call, the records under the
// directory: it removes those that are unreadable or of another boot and
// hands the others to their resources. It returns the resources that have
// leftovers, for the caller to sweep; later calls return none.
func (r *execRuns) load(log *slog.Logger) ([]*ownerRuns, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded {
		return nil, nil
	}
	bootID, err := readBootID()
	if err != nil {
		log.Warn("cannot tell this boot from others: what an agent killed before this one left running is not killed", "err", err)
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var recs []runRecord
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
		switch {
		case err != nil || rec.PGID <= 0 || rec.Token+".json" != ent.Name():
			// Written by an agent killed before the guard's go-ahead:
			// that guard never started its command.
			log.Warn("removing an unreadable run record", "file", p, "err", err)
		case bootID == "" || rec.BootID != bootID:
			log.Info("removing the record of a run of another boot", "resource", rec.Resource, "file", p)
		default:
			recs = append(recs, rec)
			continue
		}
		if err := os.Remove(p); err != nil {
			return nil, err
		}
	}
	r.bootID, r.loaded = bootID, true
	var with []*ownerRuns
	for _, rec := range recs {
		o := r.owner(rec.Resource)
		if len(o.left) == 0 {
			with = append(with, o)
		}
		o.left = append(o.left, &leftover{rec: rec, killed: map[int]bool{}})
	}
	return with, nil
}

// readBootID returns the ID of the current boot.
func readBootID() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s is empty", bootIDPath)
	}
	return id, nil
}

// sweep sends SIGKILL, once, to the leftovers of o, unless another
// goroutine is handling them, and forgets the runs that left nothing. It
// does not wait: o's resource does that before its next command.
func (r *execRuns) sweep(ctx context.Context, o *ownerRuns, log *slog.Logger) {
	select {
	case o.busy <- struct{}{}:
	default:
		return
	}
	defer func() { <-o.busy }()
	var still []*leftover
	for _, l := range o.left {
		if left, _ := r.reap(ctx, l, 0, log); len(left) > 0 {
			still = append(still, l)
		}
	}
	o.left = still
}

// reapOwner kills the leftovers of o and waits until they are gone. The
// caller holds o.busy.
func (r *execRuns) reapOwner(ctx context.Context, o *ownerRuns, log *slog.Logger) error {
	var still []*leftover
	var pids []int
	var ctxErr error
	for _, l := range o.left {
		if ctxErr != nil {
			still = append(still, l)
			continue
		}
		left, err := r.reap(ctx, l, r.killTimeout, log)
		if len(left) == 0 {
			continue
		}
		still = append(still, l)
		if ctx.Err() != nil {
			ctxErr = context.Cause(ctx)
			continue
		}
		pids = append(pids, left...)
		log.Error("processes an earlier run of the agent left are still running; its commands will not run until they are gone",
			"resource", l.rec.Resource, "pgid", l.rec.PGID, "pids", left, "err", err)
	}
	o.left = still
	switch {
	case ctxErr != nil:
		return fmt.Errorf("wait for what an earlier run left: %w", ctxErr)
	case len(pids) > 0:
		return fmt.Errorf("%w: could not kill pids %v", ErrLeftoverRunning, pids)
	}
	return nil
}

// reap kills what is left of run l, waiting up to timeout (or until ctx is
// done) for it to be gone, and removes its record once nothing is. It
// returns the pids still alive; if it could not tell, the group's ID.
func (r *execRuns) reap(ctx context.Context, l *leftover, timeout time.Duration, log *slog.Logger) ([]int, error) {
	killed, left, err := r.killRun(ctx, l, timeout)
	if len(killed) > 0 {
		log.Warn("killed processes an earlier run of the agent left running",
			"resource", l.rec.Resource, "pgid", l.rec.PGID, "pids", killed)
	}
	if err == nil && len(left) == 0 {
		if err := r.end(l.rec.Token); err != nil {
			log.Warn("could not remove a run record", "resource", l.rec.Resource, "err", err)
		}
		return nil, nil
	}
	if len(left) == 0 {
		left = []int{l.rec.PGID}
	}
	return left, err
}

// killRun sends SIGKILL to the processes run l left and waits until they
// are gone (or zombies), or until timeout has passed or ctx is done. It
// returns the pids it killed that it had not killed before, and those
// still alive. Nothing notifies about the death of another process's
// child, so it polls.
func (r *execRuns) killRun(ctx context.Context, l *leftover, timeout time.Duration) (killed, left []int, err error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		pids, leaderAlive, err := runMembers(l.rec)
		if err != nil {
			return slices.Sorted(slices.Values(killed)), pids, err
		}
		if len(pids) == 0 {
			return slices.Sorted(slices.Values(killed)), nil, nil
		}
		for _, pid := range pids {
			if !l.killed[pid] {
				l.killed[pid] = true
				killed = append(killed, pid)
			}
		}
		if leaderAlive {
			// The guard leads the group and is not reaped: the whole
			// group is the run's, even processes whose environment
			// cannot be read.
			_ = r.kill(-l.rec.PGID, syscall.SIGKILL)
		} else {
			for _, pid := range pids {
				_ = r.kill(pid, syscall.SIGKILL)
			}
		}
		if !time.Now().Before(deadline) {
			return slices.Sorted(slices.Values(killed)), pids, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return slices.Sorted(slices.Values(killed)), pids, context.Cause(ctx)
		}
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
