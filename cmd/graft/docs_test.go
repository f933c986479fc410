package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The docs' examples are run by the tests below (docs/architecture.md,
// "Docs that run", describes the convention). A fenced block of yaml or sh
// must follow a marker line, an HTML comment the rendered page hides:
//
//	<!-- graft:run -->           a graph, run to convergence (exit 0)
//	<!-- graft:check -->         a graph that is only validated
//	<!-- graft:sh -->            shell commands, run with bash -e (exit 0)
//	<!-- graft:skip REASON -->   not run, and why
//
// with attributes: file=NAME (the graph is also written to NAME in the
// page's work dir, for the page's commands), args="..." (more flags for
// graft run), exit=N (the exit code wanted), sandbox=etc|uts|systemd (the
// graph runs as root in a private /etc, plus a UTS namespace, or next to
// a booted systemd), needs=PROGRAM (run only where PROGRAM is installed);
// for sh, env (its commands prefix every later block of the page),
// background (it runs until the page's blocks are done; the next block
// starts once ready="COMMAND", default `graft status`, exits 0).
// guideRoot in any block is replaced by a directory of the test's own.

// docsDir is where the docs are, from cmd/graft.
const docsDir = "../../docs"

// guideRoot is the directory the docs' examples work in.
const guideRoot = "/tmp/graft-guide"

// docBlock is one fenced block of a page of the docs.
type docBlock struct {
	page   string // file name under docs/
	line   int    // line of the opening fence
	lang   string
	marker string            // run, check, sh, skip, message; "" for none
	attrs  map[string]string // the marker's attributes; a bare word maps to ""
	reason string            // what follows skip
	body   string
}

func (b docBlock) String() string { return fmt.Sprintf("docs/%s:%d", b.page, b.line) }

// markerLine matches a marker: <!-- graft:KIND ATTRS -->.
var markerLine = regexp.MustCompile(`^<!-- graft:(\w+)\s*(.*?)\s*-->$`)

// markerAttr matches one attribute: word, word=value or word="value".
var markerAttr = regexp.MustCompile(`(\w+)(?:=("[^"]*"|\S+))?`)

// docBlocks reads every fenced block of every page of the docs.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(docsDir, "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages in %s (%v)", docsDir, err)
	}
	var blocks []docBlock
	for _, p := range pages {
		blocks = append(blocks, pageBlocks(t, p)...)
	}
	return blocks
}

// pageBlocks reads the fenced blocks of the page at path.
func pageBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks   []docBlock
		cur      *docBlock
		lastText string
		body     strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &docBlock{page: filepath.Base(path), line: n, lang: strings.TrimSpace(line[3:])}
			if m := markerLine.FindStringSubmatch(lastText); m != nil {
				cur.marker, cur.attrs = m[1], map[string]string{}
				if cur.marker == "skip" {
					cur.reason = m[2]
				} else {
					for _, a := range markerAttr.FindAllStringSubmatch(m[2], -1) {
						cur.attrs[a[1]] = strings.Trim(a[2], `"`)
					}
				}
			}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.TrimSpace(line) != "":
			lastText = strings.TrimSpace(line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: the block opened there is never closed", cur)
	}
	return blocks
}

// markers are the markers each language of block may carry.
var markers = map[string][]string{
	"yaml": {"run", "check", "skip"},
	"sh":   {"sh", "skip"},
	"text": {"message", ""},
}

// Every graph and every command of the docs carries a marker saying how
// the tests run it (or why they do not), so that none goes unrun by
// mistake; a skipped block says why.
func TestDocsEveryExampleSaysHowItRuns(t *testing.T) {
	blocks := docBlocks(t)
	counts := map[string]int{}
	files := map[string]string{}
	for _, b := range blocks {
		allowed, checked := markers[b.lang]
		switch {
		case b.lang == "":
			t.Errorf("%s: a fenced block without a language: name it (yaml, sh, text, json)", b)
		case checked && !slices.Contains(allowed, b.marker):
			t.Errorf("%s: a %s block with marker %q: want one of %q on the line before it", b, b.lang, b.marker, allowed)
		case b.marker == "skip" && len(b.reason) < 10:
			t.Errorf("%s: a skipped block must say why (<!-- graft:skip REASON -->)", b)
		}
		if f, ok := b.attrs["file"]; ok {
			key := b.page + ":" + f
			if prev, dup := files[key]; dup {
				t.Errorf("%s: file=%s is written by %s already", b, f, prev)
			}
			files[key] = b.String()
		}
		counts[b.marker]++
	}
	t.Logf("blocks by marker: %v", counts)
	for _, b := range blocks {
		if b.marker == "skip" {
			t.Logf("%s: not run: %s", b, b.reason)
		}
	}
	if counts["run"] < 20 || counts["sh"] < 10 {
		t.Errorf("only %d graphs run and %d command blocks: the docs lost their examples, or the parser its way", counts["run"], counts["sh"])
	}
}

// inGuide replaces guideRoot in s by dir.
func inGuide(s, dir string) string { return strings.ReplaceAll(s, guideRoot, dir) }

// graftBinDir returns a directory holding a `graft` that is this test
// binary, for commands run through a shell (with GRAFT_TEST_BINARY=1 in
// their environment, it runs main).
func graftBinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(self); err != nil {
		// A private /tmp (runWithPrivateEtc) hides the test binary's
		// path; the running binary is still there.
		copyFile(t, "/proc/self/exe", filepath.Join(dir, "graft"), 0o755)
		return dir
	}
	if err := os.Symlink(self, filepath.Join(dir, "graft")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// docsEnv is the environment the docs' commands run in: graft in PATH,
// running main, its agents' ports on loopback, picked by the system.
func docsEnv(binDir string) []string {
	return append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "GRAFT_TEST_BINARY=1",
		"GORACE=atexit_sleep_ms=0", "GRAFT_CLUSTER_ADDR=127.0.0.1:0", "GRAFT_GOSSIP_ADDR=127.0.0.1:0")
}
