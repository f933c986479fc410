package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

// makeRunArgs returns the arguments `make run` gives bin/graft, read from
// the Makefile's run recipe, with graph in place of $(EXAMPLE).
func makeRunArgs(t *testing.T, graph string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "run:") || i+1 == len(lines) {
			continue
		}
		recipe := lines[i+1]
		fields := strings.Fields(recipe)
		if !strings.HasPrefix(recipe, "\t") || len(fields) < 2 || fields[0] != "./$(BIN)" {
			t.Fatalf("the Makefile's run recipe %q does not run ./$(BIN): this test does not know what it does", recipe)
		}
		args := fields[1:]
		for j, a := range args {
			switch {
			case a == "$(EXAMPLE)":
				args[j] = graph
			case strings.Contains(a, "$"):
				t.Fatalf("the Makefile's run recipe uses %s: this test does not know its value", a)
			}
		}
		return args
	}
	t.Fatal("the Makefile has no run target")
	return nil
}

// clearGraftEnv unsets, for the test, every GRAFT_ environment variable of
// the process that runs it: they would name another agent or change flags.
func clearGraftEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "GRAFT_") {
			t.Setenv(k, "") // restores it when the test ends
			os.Unsetenv(k)
		}
	}
}

// After `make run` in a checkout, the commands the README gives next,
// `bin/graft status` and `bin/graft kv ...` without flags, talk to that
// agent, here and in a directory below (they looked for the default data
// dir's socket while make run used a temporary one, and said to start
// `graft run`). make run binds loopback only and shows no key, not even on
// a terminal: its cluster is a throwaway.
func TestAfterMakeRunTheREADMEsClientCommandsFindTheAgent(t *testing.T) {
	clearGraftEnv(t)
	term := openTerminal(t) // the terminal make run runs in
	checkout := t.TempDir()
	graph := writeGraph(t, t.TempDir(), "hello.yaml", fmt.Sprintf(`graph: hello
resources:
  file:
  - name: hello
    path: %s
    content: "hello\n"
`, filepath.Join(t.TempDir(), "hello.txt")))
	cmd := exec.Command(os.Args[0], makeRunArgs(t, graph)...)
	cmd.Dir = checkout
	cmd.Stdout, cmd.Stderr = term.tty, term.tty
	a := startProcess(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("make run's terminal:\n%s", term.out.String())
		}
	})
	term.out.waitFor(t, 20*time.Second, "local API listening")

	t.Chdir(checkout)
	code, stdout, stderr := graft(t, "status", "--json")
	if code != 0 {
		t.Fatalf("graft status in the checkout: exit %d, stderr %q", code, stderr)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status --json: %v: %q", err, stdout)
	}
	for name, addr := range map[string]string{"gossip": st.GossipAddr, "cluster": st.Address} {
		if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("make run's %s address is %q, want a loopback one", name, addr)
		}
	}
	if _, err := os.Stat(filepath.Join(checkout, checkoutDataDir, apiSocket)); err != nil {
		t.Errorf("make run's agent has no socket in the checkout's %s: %v", checkoutDataDir, err)
	}
	if code, _, stderr := graft(t, "kv", "put", "app/port", "8080"); code != 0 {
		t.Errorf("graft kv put in the checkout: exit %d, stderr %q", code, stderr)
	}
	below := filepath.Join(checkout, "examples")
	if err := os.Mkdir(below, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(below)
	if code, stdout, stderr := graft(t, "kv", "get", "app/port"); code != 0 || stdout != "8080" {
		t.Errorf("graft kv get below the checkout: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	key, err := os.ReadFile(filepath.Join(checkout, checkoutDataDir, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if s := term.out.String(); strings.Contains(s, strings.TrimSpace(string(key))) || strings.Contains(s, "=====") {
		t.Error("make run showed a join banner or the cluster key on its terminal")
	}
	a.signal(os.Interrupt)
	if code := a.exitCode(20 * time.Second); code != 0 {
		t.Errorf("make run's agent exited %d after Ctrl-C, want 0", code)
	}
}

// Client commands use a .graft dir's agent only if the dir is this user's
// and closed to others, as graft makes it: a socket in a directory others
// can write could be anyone's, and would receive what the user writes.
func TestCheckoutAgentIsFoundOnlyInAPrivateDataDir(t *testing.T) {
	checkout := t.TempDir()
	dd := filepath.Join(checkout, checkoutDataDir)
	if err := os.Mkdir(dd, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := api.ListenUnix(filepath.Join(dd, apiSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	below := filepath.Join(checkout, "a", "b")
	if err := os.MkdirAll(below, 0o755); err != nil {
		t.Fatal(err)
	}
	if s := findCheckoutAgent(t.Context(), below); s.sock != filepath.Join(dd, apiSocket) {
		t.Errorf("from %s: found %+v; want %s", below, s, filepath.Join(dd, apiSocket))
	}
	if err := os.Chmod(dd, 0o770); err != nil {
		t.Fatal(err)
	}
	if s := findCheckoutAgent(t.Context(), below); s.sock != "" {
		t.Errorf("found %s in a data dir of mode 0770", s.sock)
	}
}
