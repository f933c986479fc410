package resources

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 9, item 4: graft refused exec parameters that mgmt accepts: a
// relative working directory, and a program padded with spaces before args.
// A shell or working directory for a watch or if command that is not there
// is accepted too, and reported as ignored.
func TestExecParamsMgmtAcceptsAreAccepted(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	got := execStdout(t, &Exec{name: "x", Cmd: "pwd -P", Cwd: "sub"})
	want, err := filepath.EvalSymlinks(filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want+"\n" {
		t.Errorf("relative cwd: ran in %q, want %q", got, want)
	}
	if got := execStdout(t, &Exec{name: "x", Cmd: " printf ", Args: []string{"%s|", "a b"}}); got != "a b|" {
		t.Errorf("padded cmd with args: stdout %q, want %q", got, "a b|")
	}

	e := &Exec{name: "x", Cmd: "true", WatchShell: "/bin/bash", WatchCwd: "/", IfShell: "/bin/sh", IfCwd: "/"}
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	ignored := e.IgnoredParams()
	for key, cmd := range map[string]string{"watchshell": "watchcmd", "watchcwd": "watchcmd", "ifshell": "ifcmd", "ifcwd": "ifcmd"} {
		if !strings.Contains(ignored[key], cmd) {
			t.Errorf("IgnoredParams()[%q] = %q, want a reason naming %s", key, ignored[key], cmd)
		}
	}
	if len(ignored) != 4 {
		t.Errorf("IgnoredParams() = %v, want 4 keys", ignored)
	}
	e.WatchCmd, e.IfCmd = "sleep 1", "true"
	if got := e.IgnoredParams(); len(got) != 0 {
		t.Errorf("with watchcmd and ifcmd: IgnoredParams() = %v, want none", got)
	}
}

// Issue 9, item 8: an exec's start was not logged, so a long command ran
// unannounced; with apply off it did not say that it would run, or why.
func TestExecLogsItsStartAndWhatItWouldRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	creates := filepath.Join(dir, "created")
	e, _ := newTestExec(t, &Exec{name: "x", Cmd: "touch " + marker, IfCmd: "true", Creates: creates})
	logs := &logRecorder{}
	e.rt.Logger = slog.New(logs)

	execCheckApply(t, e, false)
	rec := only(t, logs.take(), "would run cmd")
	if rec.attrs["cmd"] != "touch "+marker {
		t.Errorf("would run: logged cmd %q, want %q", rec.attrs["cmd"], "touch "+marker)
	}
	for _, want := range []string{"ifcmd exited 0", creates + " does not exist"} {
		if !strings.Contains(rec.attrs["reason"], want) {
			t.Errorf("would run: logged reason %q, want it to say %q", rec.attrs["reason"], want)
		}
	}
	if execExists(t, marker) {
		t.Fatal("apply=false ran the command")
	}

	execCheckApply(t, e, true)
	recs := logs.take()
	start := only(t, recs, "running cmd")
	only(t, recs, "cmd ran")
	if start.attrs["cmd"] != "touch "+marker {
		t.Errorf("running: logged cmd %q, want %q", start.attrs["cmd"], "touch "+marker)
	}
	var order []string
	for _, r := range recs {
		if r.msg == "running cmd" || r.msg == "cmd ran" {
			order = append(order, r.msg)
		}
	}
	if strings.Join(order, ",") != "running cmd,cmd ran" {
		t.Errorf("logged %v, want the start before the end", order)
	}
}
