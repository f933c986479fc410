package main

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docsTimeout bounds one command of the docs, generous for a loaded
// machine: a graph converges in a second or two.
const docsTimeout = 2 * time.Minute

// wantExit is the exit code b's marker asks for (exit=N, else 0).
func wantExit(t *testing.T, b docBlock) int {
	t.Helper()
	s, ok := b.attrs["exit"]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: exit=%q is not a number", b, s)
	}
	return n
}

// runDocCommand runs name with args in dir, in env, and returns its exit
// code and output; it fails t if the command cannot start or outlives
// docsTimeout.
func runDocCommand(t *testing.T, dir string, env []string, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), docsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.WaitDelay = dir, env, 10*time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: still running after %v\n%s", name, strings.Join(args, " "), docsTimeout, out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return 0, string(out)
}

// needs skips t when b's marker names a program (needs=PROGRAM) this
// machine lacks.
func needs(t *testing.T, b docBlock) {
	t.Helper()
	if p, ok := b.attrs["needs"]; ok {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s needs %s, which is not installed", b, p)
		}
	}
}

// checkAndRunGraph writes b's graph to dir, validates it with graft check
// and, for a run marker, runs it to convergence, wanting b's exit code.
func checkAndRunGraph(t *testing.T, b docBlock, dir, binDir string) {
	t.Helper()
	env, graftBin := docsEnv(binDir), filepath.Join(binDir, "graft")
	file := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(file, []byte(inGuide(b.body, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := runDocCommand(t, dir, env, graftBin, "check", file); code != 0 {
		t.Fatalf("%s: graft check: exit %d\n%s", b, code, out)
	}
	if b.marker != "run" {
		return
	}
	args := append([]string{"run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit"},
		strings.Fields(b.attrs["args"])...)
	code, out := runDocCommand(t, dir, env, graftBin, append(args, "yaml", file)...)
	if want := wantExit(t, b); code != want {
		t.Fatalf("%s: graft %s: exit %d, want %d\n%s", b, strings.Join(args, " "), code, want, out)
	}
}

// Every graph of the docs loads, and each one marked run converges on
// this machine, run by the graft binary as the docs say (its paths under
// a directory of the test's). Those that need root and a sandbox run in
// TestDocsSandboxedGraphsRun.
func TestDocsGraphsRun(t *testing.T) {
	bin := graftBinDir(t)
	for _, b := range docBlocks(t) {
		if b.lang != "yaml" || (b.marker != "run" && b.marker != "check") || b.attrs["sandbox"] != "" {
			continue
		}
		t.Run(strings.ReplaceAll(b.String(), "/", "_"), func(t *testing.T) {
			t.Parallel()
			needs(t, b)
			dir := t.TempDir()
			checkAndRunGraph(t, b, dir, bin)
		})
	}
}

// The docs' graphs that manage accounts or the host's name run as root in
// a private overlay of /etc (and a UTS namespace of their own), as the
// tests of mgmt's examples do; those that manage services next to a
// systemd booted for the test.
func TestDocsSandboxedGraphsRun(t *testing.T) {
	bySandbox := map[string][]docBlock{}
	for _, b := range docBlocks(t) {
		if sandbox := b.attrs["sandbox"]; b.lang == "yaml" && b.marker == "run" && sandbox != "" {
			bySandbox[sandbox] = append(bySandbox[sandbox], b)
		}
	}
	for _, sandbox := range slices.Sorted(maps.Keys(bySandbox)) {
		blocks := bySandbox[sandbox]
		t.Run(sandbox, func(t *testing.T) {
			switch sandbox {
			case "systemd":
				s := bootedSystemd(t)
				for _, b := range blocks {
					runInSystemd(t, s, []byte(inGuide(b.body, "/root/graft-guide")), "graph.yaml")
				}
			case "etc", "uts":
				if !runWithPrivateEtc(t, sandbox == "uts") {
					return
				}
				bin := graftBinDir(t)
				for _, b := range blocks {
					checkAndRunGraph(t, b, t.TempDir(), bin)
				}
			default:
				t.Fatalf("%s: sandbox=%s: want etc, uts or systemd", blocks[0], sandbox)
			}
		})
	}
}

// Every page's commands run in order, as a reader would type them, in
// the page's work dir (guideRoot), with graft in PATH: each block exits as
// its marker says, and agents a block starts in the background run until
// the page is done.
func TestDocsCommandsRun(t *testing.T) {
	bin := graftBinDir(t)
	pages := map[string][]docBlock{}
	var order []string
	for _, b := range docBlocks(t) {
		if _, ok := pages[b.page]; !ok {
			order = append(order, b.page)
		}
		pages[b.page] = append(pages[b.page], b)
	}
	for _, page := range order {
		blocks := pages[page]
		t.Run(page, func(t *testing.T) {
			t.Parallel()
			dir := openTempDir(t)
			env := docsEnv(bin)
			for _, b := range blocks {
				if f, ok := b.attrs["file"]; ok && b.lang == "yaml" {
					if err := os.WriteFile(filepath.Join(dir, f), []byte(inGuide(b.body, dir)), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			var prelude strings.Builder
			for _, b := range blocks {
				if b.lang != "sh" || b.marker != "sh" {
					continue
				}
				if p, ok := b.attrs["needs"]; ok {
					if _, err := exec.LookPath(p); err != nil {
						t.Logf("%s: not run: it needs %s, which is not installed", b, p)
						continue
					}
				}
				script := prelude.String() + inGuide(b.body, dir)
				if _, ok := b.attrs["env"]; ok {
					prelude.WriteString(inGuide(b.body, dir))
				}
				if _, ok := b.attrs["background"]; ok {
					startDocAgent(t, b, dir, env, script, prelude.String())
					continue
				}
				code, out := runDocCommand(t, dir, env, "bash", "-e", "-o", "pipefail", "-c", script)
				if want := wantExit(t, b); code != want {
					t.Fatalf("%s: exit %d, want %d:\n%s\noutput:\n%s", b, code, want, b.body, out)
				}
				t.Logf("%s:\n%s%s", b, b.body, out)
			}
		})
	}
}

// startDocAgent runs script in the background, in its own process group,
// and waits until the block's ready command (default `graft status`)
// exits 0. When the page is done the group gets SIGTERM, as Ctrl-C would
// send, and the agent must stop.
func startDocAgent(t *testing.T, b docBlock, dir string, env []string, script, prelude string) {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	a := startProcess(t, cmd)
	t.Cleanup(func() {
		// The shell and the agent it started both get SIGTERM; the page
		// is done once every process of the group has exited.
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		deadline := time.Now().Add(docsTimeout)
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		for groupRunning(pgid) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				t.Errorf("%s: the agent did not stop within %v of SIGTERM\n%s", b, docsTimeout, a.output())
				break
			}
			<-poll.C // a process group's end announces itself to nobody: poll
		}
		<-a.done
	})
	ready := b.attrs["ready"]
	if ready == "" {
		ready = "graft status"
	}
	deadline := time.Now().Add(docsTimeout)
	for {
		code, out := runDocCommand(t, dir, env, "bash", "-c", prelude+inGuide(ready, dir))
		if code == 0 {
			return
		}
		select {
		case <-a.done:
			t.Fatalf("%s: the agent exited (%v) before %q succeeded:\n%s", b, a.err, ready, a.output())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q still fails after %v: %s\nagent output:\n%s", b, ready, docsTimeout, out, a.output())
		}
	}
}

// groupRunning reports whether a process of process group pgid runs (a
// zombie, exited but not yet reaped, does not count: where PID 1 reaps
// nothing, an orphan stays one).
func groupRunning(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parens.
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}
