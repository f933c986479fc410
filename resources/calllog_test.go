package resources

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// toolCallLog puts a tool first in PATH that records its arguments, one
// line per run, and runs the real one; it returns the log's path.
func toolCallLog(t *testing.T, tool string) string {
	t.Helper()
	real, err := exec.LookPath(tool)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", log, real)
	if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

// loggedRuns returns the runs recorded in log whose arguments hold verb
// and none of skip.
func loggedRuns(t *testing.T, log, verb string, skip ...string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var runs []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if slices.Contains(f, verb) && !slices.ContainsFunc(skip, func(s string) bool { return slices.Contains(f, s) }) {
			runs = append(runs, strings.TrimSpace(line))
		}
	}
	return runs
}

// aptCallLog records the runs of apt-get (see toolCallLog).
func aptCallLog(t *testing.T) string { return toolCallLog(t, "apt-get") }

// aptRuns returns the recorded apt-get runs that change the host (not
// simulations, -s) whose command is verb.
func aptRuns(t *testing.T, log, verb string) []string { return loggedRuns(t, log, verb, "-s") }

// dnfCallLog records the runs of dnf (see toolCallLog).
func dnfCallLog(t *testing.T) string { return toolCallLog(t, "dnf") }

// dnfRuns returns the recorded dnf runs whose command is verb.
func dnfRuns(t *testing.T, log, verb string) []string { return loggedRuns(t, log, verb) }
