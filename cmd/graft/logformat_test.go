package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// withoutEnv returns the process's environment without key.
func withoutEnv(key string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

// Left at its default (auto), the log is text when stderr is a terminal
// and JSON otherwise (a service's journal, a file, a pipe); --log-format
// and GRAFT_LOG_FORMAT override it either way.
func TestLogFormatAutoIsTextOnATerminalAndJSONElsewhere(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", "resources:\n  noop:\n  - name: n\n")
	runArgs := func(extra ...string) []string {
		return testClusterAddr(append(append([]string{"run", "--tmp-prefix", "--converged-timeout", "0", "--converged-exit"},
			extra...), "yaml", g))
	}

	t.Run("pipe", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], runArgs()...)
		cmd.Env = withoutEnv("GRAFT_LOG_FORMAT")
		a := startProcess(t, cmd)
		if code := a.exitCode(time.Minute); code != 0 {
			t.Fatalf("exit %d", code)
		}
		lines := strings.Split(strings.TrimSpace(a.output()), "\n")
		for _, l := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil {
				t.Fatalf("a log to a pipe is not JSON: %q (%v)", l, err)
			}
		}
		if !strings.Contains(a.output(), `"msg":"converged in `) {
			t.Errorf("no run summary record in:\n%s", a.output())
		}
	})

	t.Run("terminal", func(t *testing.T) {
		term := openTerminal(t)
		cmd := exec.Command(os.Args[0], runArgs()...)
		cmd.Env = withoutEnv("GRAFT_LOG_FORMAT")
		cmd.Stdout, cmd.Stderr = term.tty, term.tty
		a := startProcess(t, cmd)
		if code := a.exitCode(time.Minute); code != 0 {
			t.Fatalf("exit %d", code)
		}
		term.out.waitFor(t, 10*time.Second, "msg=stopped")
		if out := term.out.String(); !strings.Contains(out, `level=INFO msg="converged in `) || strings.Contains(out, `"msg":`) {
			t.Errorf("a log to a terminal is not text:\n%q", out)
		}
	})

	t.Run("flag overrides", func(t *testing.T) {
		term := openTerminal(t)
		cmd := exec.Command(os.Args[0], runArgs("--log-format", "json")...)
		cmd.Env = withoutEnv("GRAFT_LOG_FORMAT")
		cmd.Stdout, cmd.Stderr = term.tty, term.tty
		a := startProcess(t, cmd)
		if code := a.exitCode(time.Minute); code != 0 {
			t.Fatalf("exit %d", code)
		}
		term.out.waitFor(t, 10*time.Second, `"msg":"stopped"`)

		cmd = exec.Command(os.Args[0], runArgs()...)
		cmd.Env = append(withoutEnv("GRAFT_LOG_FORMAT"), "GRAFT_LOG_FORMAT=text")
		b := startProcess(t, cmd)
		if code := b.exitCode(time.Minute); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(b.output(), "level=INFO msg=stopped") {
			t.Errorf("GRAFT_LOG_FORMAT=text to a pipe is not text:\n%s", b.output())
		}
	})

	t.Run("bad value", func(t *testing.T) {
		code, _, stderr := graft(t, "run", "--log-format", "xml", "--tmp-prefix", "yaml", g)
		if code != 64 || !strings.Contains(stderr, `--log-format: "xml" is not one of text, json, auto`) {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}
