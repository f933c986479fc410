package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// commandPaths lists every visible command of graft's app, as typed
// ("kv put"), with its names (a command's aliases included).
func commandPaths() map[string][]string {
	paths := map[string][]string{}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			p := strings.TrimSpace(prefix + " " + c.Name)
			paths[p] = c.Names()
			walk(p, c.Subcommands)
		}
	}
	walk("", newApp(&env{stdout: io.Discard, stderr: io.Discard}).Commands)
	return paths
}

// bashComplete runs the script in a real bash, completing the command
// line typed (its last word the one being completed), and returns the
// candidates bash would offer.
func bashComplete(t *testing.T, script string, typed ...string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed: the completion script cannot be run")
	}
	p := filepath.Join(t.TempDir(), "graft.bash")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, w := range typed {
		words = append(words, "'"+w+"'")
	}
	prog := `source "$1" || exit 9
COMP_WORDS=(` + strings.Join(words, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_graft
printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.CommandContext(t.Context(), bash, "--norc", "--noprofile", "-c", prog, "bash", p).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// The bash script completes every command, every subcommand and a
// command's flags, following the words typed before.
func TestBashCompletionOffersEveryCommandAndItsFlags(t *testing.T) {
	code, script, stderr := graft(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("graft completion bash: exit %d: %s", code, stderr)
	}
	paths := commandPaths()
	for p, names := range paths {
		parent, _ := cutLastWord(p)
		typed := append([]string{"graft"}, strings.Fields(parent)...)
		got := bashComplete(t, script, append(typed, "")...)
		for _, n := range names {
			if !slices.Contains(got, n) {
				t.Errorf("completing %q: %q is not offered; got %q", strings.Join(typed, " ")+" ", n, got)
			}
		}
	}
	if got := bashComplete(t, script, "graft", "kv", "put", "--c"); !slices.Equal(got, []string{"--cas"}) {
		t.Errorf("completing \"graft kv put --c\": got %q, want [--cas]", got)
	}
	if got := bashComplete(t, script, "graft", "--data-dir", "run", "--conv"); !slices.Contains(got, "--converged-exit") {
		t.Errorf("completing \"graft run --conv\" after a flag: got %q, want --converged-exit among them", got)
	}
	if got := bashComplete(t, script, "graft", "check", ""); len(got) != 0 {
		t.Errorf("completing \"graft check \": got %q, want nothing (bash then completes file names)", got)
	}
	if got := bashComplete(t, script, "graft", "kv", "g"); !slices.Equal(got, []string{"get"}) {
		t.Errorf("completing \"graft kv g\": got %q, want [get]", got)
	}
}

// cutLastWord splits "kv put" into "kv" and "put".
func cutLastWord(p string) (string, string) {
	i := strings.LastIndex(p, " ")
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// zshComplete runs the script in a real zsh, completing the command line
// typed, with compadd and _files replaced by functions that print what
// they are given (they work only inside zsh's completion system): it
// returns the candidates the script hands compadd, or ["_files"] when it
// falls back to file names.
func zshComplete(t *testing.T, script string, typed ...string) []string {
	t.Helper()
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh is not installed: the zsh completion script cannot be run")
	}
	p := filepath.Join(t.TempDir(), "_graft")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, w := range typed {
		words = append(words, "'"+w+"'")
	}
	prog := `compdef() { :; }
compadd() { [[ "$1" == -- ]] && shift; (( $# )) || return 1; print -l -- "$@"; }
_files() { print _files; }
source "$1" || exit 9
words=(` + strings.Join(words, " ") + `)
CURRENT=${#words}
_graft`
	out, err := exec.CommandContext(t.Context(), zsh, "-f", "-c", prog, "zsh", p).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// The zsh script offers what the bash one does: every command, every
// subcommand, a command's flags, and file names where none applies.
func TestZshCompletionOffersEveryCommandAndItsFlags(t *testing.T) {
	code, script, stderr := graft(t, "completion", "zsh")
	if code != 0 {
		t.Fatalf("graft completion zsh: exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(script, "#compdef graft\n") {
		t.Errorf("the script does not start with #compdef graft:\n%.100s", script)
	}
	for p, names := range commandPaths() {
		parent, _ := cutLastWord(p)
		typed := append([]string{"graft"}, strings.Fields(parent)...)
		got := zshComplete(t, script, append(typed, "")...)
		for _, n := range names {
			if !slices.Contains(got, n) {
				t.Errorf("completing %q: %q is not offered; got %q", strings.Join(typed, " ")+" ", n, got)
			}
		}
	}
	if got := zshComplete(t, script, "graft", "--data-dir", "kv", "put", "-"); !slices.Contains(got, "--cas") || slices.Contains(got, "get") {
		t.Errorf("completing \"graft kv put -\": got %q, want put's flags (--cas) and no subcommand of kv", got)
	}
	if got := zshComplete(t, script, "graft", "check", "x", ""); !slices.Equal(got, []string{"_files"}) {
		t.Errorf("completing \"graft check x \": got %q, want file names", got)
	}
}

func TestCompletionOfAnUnknownShellIsAUsageError(t *testing.T) {
	code, stdout, stderr := graft(t, "completion", "fish")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, `"fish" is not a shell graft completes`) {
		t.Fatalf("graft completion fish: exit %d, stdout %q, stderr %q; want exit %d naming fish", code, stdout, stderr, exitUsage)
	}
}

// The manual page has a section for every command, and renders with no
// warning from groff.
func TestManPageHasEveryCommand(t *testing.T) {
	code, page, stderr := graft(t, "man")
	if code != 0 {
		t.Fatalf("graft man: exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(page, ".nh\n.TH graft 1") {
		t.Errorf("the page does not start as a section 1 man page:\n%.200s", page)
	}
	headings := map[string]bool{}
	for _, l := range strings.Split(page, "\n") {
		if h, ok := strings.CutPrefix(l, ".SH "); ok {
			headings[h] = true
		}
		if h, ok := strings.CutPrefix(l, ".SS "); ok {
			headings[h] = true
		}
	}
	for p, names := range commandPaths() {
		if !headings[strings.Join(names, ", ")] {
			t.Errorf("no section for %q (headings: %v)", p, headings)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed: the page is not rendered")
	}
	cmd := exec.CommandContext(t.Context(), groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errOut.String())
	}
}

// urfave/cli gives every command a "help" subcommand unless told not to: on
// a command that takes arguments it swallowed an argument "help" (a key
// named help, a graph file named help) and printed the help instead.
func TestALeafCommandTakesHelpAsAnArgument(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, stdout, stderr := graft(t, "kv", "get", "--api", sock, "help")
	if code != 1 || stdout != "" || !strings.Contains(stderr, sock) {
		t.Fatalf("graft kv get help: exit %d, stdout %q, stderr %q; want exit 1 for the agent not answering on %s", code, stdout, stderr, sock)
	}
}
