package graphviz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/graftcm/graft/api"
)

// stmt is one statement of the DOT text: a node (To empty) or an edge,
// with its attributes, unquoted.
type stmt struct {
	From, To string
	Attrs    map[string]string
	InLegend bool
}

// parseDOT reads the DOT text Write emits: a statement a line, quoted
// names, attributes as key=value or key="quoted". It fails the test on
// any line it cannot read, so a name that breaks the file shows.
func parseDOT(t testing.TB, src []byte) (nodes map[string]stmt, edges []stmt) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(src), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "digraph graft {" || lines[len(lines)-1] != "}" {
		t.Fatalf("not a digraph graft { ... }:\n%s", src)
	}
	nodes = map[string]stmt{}
	legend := false
	for i, line := range lines[1 : len(lines)-1] {
		line = strings.TrimLeft(line, "\t")
		switch {
		case line == "subgraph cluster_legend {":
			legend = true
			continue
		case line == "}" && legend:
			legend = false
			continue
		case !strings.HasPrefix(line, `"`):
			if !strings.HasSuffix(line, ";") || !strings.ContainsAny(line, "=") {
				t.Fatalf("line %d: %q is not an attribute statement", i+2, line)
			}
			continue
		}
		st, err := parseStmt(line)
		if err != nil {
			t.Fatalf("line %d: %q: %v", i+2, line, err)
		}
		st.InLegend = legend
		if st.To == "" {
			if _, dup := nodes[st.From]; dup {
				t.Fatalf("line %d: node %q declared twice", i+2, st.From)
			}
			nodes[st.From] = st
		} else {
			edges = append(edges, st)
		}
	}
	return nodes, edges
}

func parseStmt(line string) (stmt, error) {
	st := stmt{Attrs: map[string]string{}}
	var err error
	if st.From, line, err = unquoteFront(line); err != nil {
		return st, err
	}
	if rest, ok := strings.CutPrefix(line, " -> "); ok {
		if st.To, line, err = unquoteFront(rest); err != nil {
			return st, err
		}
		// A chain a -> b -> c (the legend's invisible column).
		for strings.HasPrefix(line, " -> ") {
			if _, line, err = unquoteFront(line[4:]); err != nil {
				return st, err
			}
		}
	}
	if rest, ok := strings.CutPrefix(line, " ["); ok {
		for {
			key, val, ok := strings.Cut(rest, "=")
			if !ok {
				return st, fmt.Errorf("attribute without =: %q", rest)
			}
			rest = val
			var v string
			if strings.HasPrefix(rest, `"`) {
				if v, rest, err = unquoteFront(rest); err != nil {
					return st, err
				}
			} else {
				end := strings.IndexAny(rest, ",]")
				if end < 0 {
					return st, fmt.Errorf("unterminated attributes")
				}
				v, rest = rest[:end], rest[end:]
			}
			st.Attrs[key] = v
			if r, ok := strings.CutPrefix(rest, ", "); ok {
				rest = r
				continue
			}
			if line, ok = strings.CutPrefix(rest, "]"); !ok {
				return st, fmt.Errorf("attributes end with %q", rest)
			}
			break
		}
	}
	if line != ";" {
		return st, fmt.Errorf("statement ends with %q, want ;", line)
	}
	return st, nil
}

// unquoteFront reads the quoted string s starts with, undoing Quote, and
// returns it and what follows.
func unquoteFront(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, fmt.Errorf("want a quoted string at %q", s)
	}
	var b []byte
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return string(b), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", s, errors.New("backslash at the end")
			}
			i++
			switch s[i] {
			case '"', '\\':
				b = append(b, s[i])
			case 'n':
				b = append(b, '\n')
			case 'x':
				var h byte
				if i+2 >= len(s) {
					return "", s, errors.New(`short \x`)
				}
				if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &h); err != nil {
					return "", s, fmt.Errorf(`bad \x: %w`, err)
				}
				b = append(b, h)
				i += 2
			default:
				return "", s, fmt.Errorf("unknown escape \\%c", s[i])
			}
		case '\n', '\r':
			return "", s, errors.New("raw line break in a string")
		default:
			b = append(b, c)
		}
	}
	return "", s, errors.New("unterminated string")
}

func rid(kind, name string) api.ResourceID { return api.ResourceID{Kind: kind, Name: name} }

// sample has a vertex in each state, an autogrouped vertex, and a plain,
// a notify, a send/recv and a notify+send/recv edge, out of order.
func sample() api.Graph {
	return api.Graph{Host: "h1", Graph: "web", Converged: true,
		Vertices: []api.GraphVertex{
			{Kind: "print", Name: "kernel", State: "dirty"},
			{Kind: "noop", Name: "a", State: "ok", Members: []api.ResourceID{rid("noop", "a"), rid("noop", "b")}},
			{Kind: "exec", Name: "uname", State: "running"},
			{Kind: "exec", Name: "reload", State: "failed"},
			{Kind: "file", Name: "/etc/motd", State: "waiting", Waiting: "dependencies"},
			{Kind: "password", Name: "pw", State: "ok"},
		},
		Edges: []api.GraphEdge{
			{From: rid("exec", "uname"), To: rid("print", "kernel"), Keys: []api.GraphKey{{Send: "stdout", Recv: "msg"}}},
			{From: rid("noop", "a"), To: rid("exec", "reload"), Notify: true},
			{From: rid("exec", "reload"), To: rid("exec", "uname")},
			{From: rid("password", "pw"), To: rid("file", "/etc/motd"), Notify: true,
				Keys: []api.GraphKey{{Send: "password", Recv: "content"}, {Send: "password", Recv: "alt"}}},
		}}
}

// Each vertex is a node filled with its state's colour and labelled
// kind[name] (a group with its members); each edge kind is drawn its own
// way, send/recv edges labelled "send -> recv"; the legend names every
// state and edge kind; dot accepts the text.
func TestDOTDrawsStatesEdgeKindsAndGroups(t *testing.T) {
	src := DOT(sample())
	nodes, edges := parseDOT(t, src)
	color := map[string]string{}
	for _, p := range Palette() {
		color[p.State] = p.Color
	}
	wantNodes := map[string]map[string]string{
		"exec[reload]":    {"label": "exec[reload]", "fillcolor": color["failed"], "tooltip": "failed"},
		"exec[uname]":     {"label": "exec[uname]", "fillcolor": color["running"], "tooltip": "running"},
		"file[/etc/motd]": {"label": "file[/etc/motd]", "fillcolor": color["waiting"], "tooltip": "waiting (dependencies)"},
		"noop[a]":         {"label": "autogroup of 2:\nnoop[a]\nnoop[b]", "fillcolor": color["ok"], "tooltip": "ok"},
		"password[pw]":    {"label": "password[pw]", "fillcolor": color["ok"], "tooltip": "ok"},
		"print[kernel]":   {"label": "print[kernel]", "fillcolor": color["dirty"], "tooltip": "dirty"},
	}
	gotNodes := map[string]map[string]string{}
	legend := map[string]bool{}
	for name, n := range nodes {
		if n.InLegend {
			legend[n.Attrs["label"]] = true
			continue
		}
		gotNodes[name] = n.Attrs
	}
	if !reflect.DeepEqual(gotNodes, wantNodes) {
		t.Errorf("nodes:\n got %v\nwant %v", gotNodes, wantNodes)
	}
	for _, want := range []string{"ok", "dirty", "running", "waiting", "failed", "dependency", "notify", "send/recv"} {
		if !legend[want] {
			t.Errorf("the legend lacks %q: %v", want, legend)
		}
	}
	var got []string
	for _, e := range edges {
		if !e.InLegend {
			got = append(got, fmt.Sprintf("%s -> %s %v", e.From, e.To, e.Attrs))
		}
	}
	want := []string{
		"exec[reload] -> exec[uname] map[]",
		"exec[uname] -> print[kernel] map[color:" + sendColor + " label:stdout -> msg style:bold]",
		"noop[a] -> exec[reload] map[color:" + notifyColor + " label:notify style:dashed]",
		"password[pw] -> file[/etc/motd] map[color:" + sendColor + " label:notify\npassword -> alt\npassword -> content style:bold,dashed]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("edges:\n got %q\nwant %q", got, want)
	}
	if !bytes.Contains(src, []byte(`label="graph web on h1: converged";`)) {
		t.Errorf("no title:\n%s", src)
	}
	t.Run("dot accepts it", func(t *testing.T) { dotAccepts(t, src, len(nodes)) })
}

// dotAccepts runs dot -Tsvg on src and checks that it draws nodes nodes
// and says nothing on stderr; it skips without dot.
func dotAccepts(t *testing.T, src []byte, nodes int) {
	t.Helper()
	bin, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("the dot program (Graphviz) is not installed")
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(src), &out, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("dot: %v: %s\n%s", err, stderr.String(), src)
	}
	if got := strings.Count(out.String(), `class="node"`); got != nodes {
		t.Errorf("dot drew %d nodes, want %d", got, nodes)
	}
}

// The text depends on the graph, not on the order of its vertices, edges
// or keys.
func TestDOTIsDeterministic(t *testing.T) {
	g := sample()
	want := DOT(g)
	g.Vertices = append([]api.GraphVertex(nil), g.Vertices...)
	g.Edges = append([]api.GraphEdge(nil), g.Edges...)
	for i, j := 0, len(g.Vertices)-1; i < j; i, j = i+1, j-1 {
		g.Vertices[i], g.Vertices[j] = g.Vertices[j], g.Vertices[i]
	}
	g.Edges[0], g.Edges[3] = g.Edges[3], g.Edges[0]
	g.Edges[0].Keys = []api.GraphKey{g.Edges[0].Keys[1], g.Edges[0].Keys[0]}
	if got := DOT(g); !bytes.Equal(got, want) {
		t.Errorf("reordered input, different text:\n%s\nwant\n%s", got, want)
	}
}

// Names with quotes, backslashes, line breaks, control characters and
// bytes that are not UTF-8 stay on their line and come back unchanged;
// dot accepts them and draws one node per vertex.
func TestQuoteEscapesNamesThatWouldBreakTheFile(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`plain`, `"plain"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\dir\`, `"C:\\dir\\"`},
		{"two\nlines", `"two\nlines"`},
		{`\N and \l`, `"\\N and \\l"`},
		{"tab\tbell\a", `"tab\x09bell\x07"`},
		{"bad\xffbyte", `"bad\xffbyte"`},
		{"é ünïcode ✓", `"é ünïcode ✓"`},
		{"", `""`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	names := []string{`say "hi"`, `C:\dir\`, "two\nlines", `\N`, "tab\tbell\a", "a\r\nb", `"]; evil -> x [`, "x\xff", "x\\xff"}
	g := api.Graph{Graph: `my "graph"\`}
	for i, n := range names {
		g.Vertices = append(g.Vertices, api.GraphVertex{Kind: "file", Name: n, State: "ok"})
		if i > 0 {
			g.Edges = append(g.Edges, api.GraphEdge{From: rid("file", names[i-1]), To: rid("file", n),
				Keys: []api.GraphKey{{Send: n, Recv: `"\`}}})
		}
	}
	src := DOT(g)
	nodes, edges := parseDOT(t, src)
	for _, n := range names {
		id := NodeID(rid("file", n))
		if nodes[id].Attrs["label"] != id {
			t.Errorf("node %q: got %+v", id, nodes[id])
		}
	}
	if len(edges) < len(names)-1 {
		t.Errorf("%d edges, want %d and the legend's", len(edges), len(names)-1)
	}
	t.Run("dot accepts it", func(t *testing.T) { dotAccepts(t, src, len(nodes)) })
}

// Quote never lets a string out of its quotes nor onto another line,
// and no two strings quote alike.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, "\n", `a\"b`, "\xff", "\\x41", "A", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		back, rest, err := unquoteFront(q)
		if err != nil || rest != "" || back != s {
			t.Fatalf("Quote(%q) = %s reads back as %q (rest %q): %v", s, q, back, rest, err)
		}
		if strings.ContainsAny(q, "\n\r") || !utf8.ValidString(q) {
			t.Fatalf("Quote(%q) = %q: a raw line break or invalid UTF-8", s, q)
		}
		g := api.Graph{Graph: s, Vertices: []api.GraphVertex{{Kind: "k", Name: s, State: s,
			Members: []api.ResourceID{rid(s, s)}}}, Edges: []api.GraphEdge{{From: rid("k", s), To: rid("k", s),
			Notify: true, Keys: []api.GraphKey{{Send: s, Recv: s}}}}}
		nodes, _ := parseDOT(t, DOT(g))
		if _, ok := nodes[NodeID(rid("k", s))]; !ok {
			t.Fatalf("name %q: node missing from %v", s, nodes)
		}
	})
}

// Without dot, Render says the dot program is missing; with it, it
// writes the picture.
func TestRenderNamesMissingDotAndWritesPictures(t *testing.T) {
	dir := t.TempDir()
	src := DOT(sample())
	bin, lookErr := exec.LookPath("dot")
	t.Setenv("PATH", dir) // no dot here
	err := Render(t.Context(), src, "png", filepath.Join(dir, "g.png"))
	if !errors.Is(err, ErrNoDot) || !strings.Contains(err.Error(), "dot program") {
		t.Errorf("without dot: got %v, want ErrNoDot", err)
	}
	if err := Render(t.Context(), src, "gif", filepath.Join(dir, "g.gif")); err == nil || !strings.Contains(err.Error(), `"gif"`) {
		t.Errorf("gif: got %v, want an error naming the format", err)
	}
	if lookErr != nil {
		t.Skip("the dot program (Graphviz) is not installed")
	}
	t.Setenv("PATH", filepath.Dir(bin))
	for format, magic := range map[string]string{"png": "\x89PNG", "svg": "<?xml"} {
		path := filepath.Join(dir, "g."+format)
		if err := Render(context.Background(), src, format, path); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(data, []byte(magic)) {
			t.Errorf("%s: %.20q: %v", format, data, err)
		}
	}
	if err := Render(t.Context(), []byte("digraph {"), "svg", filepath.Join(dir, "bad.svg")); err == nil ||
		!strings.Contains(err.Error(), "dot:") {
		t.Errorf("bad DOT: got %v, want dot's error", err)
	}
}
