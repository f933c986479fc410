package yamlgraph_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
)

func registry() *engine.Registry { return resources.NewRegistry(resources.Deps{}) }

func TestParseGraph(t *testing.T) {
	src := `---
graph: mygraph
comment: a chain
resources:
  file:
  - name: f1
    path: /tmp/graft-test/f1
    content: |
      hello
    state: exists
    mode: "0600"
  - name: f2
    path: /tmp/graft-test/f2
    meta:
      noop: true
  exec:
  - name: e1
    cmd: echo hi
  noop:
  print: []
edges:
- name: e1
  from: {kind: file, name: f1}
  to: {kind: file, name: f2}
- name: e2
  from: {kind: File, name: f2}
  to: {kind: exec, name: e1}
  notify: true
`
	res, err := yamlgraph.Parse("g.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	g := res.Graph
	if g.Name != "mygraph" || g.Len() != 3 || len(g.Edges()) != 2 {
		t.Fatalf("got graph %q with %d vertices and %d edges", g.Name, g.Len(), len(g.Edges()))
	}
	v, ok := g.Vertex(engine.ID{Kind: "file", Name: "f1"})
	if !ok {
		t.Fatal("file f1 missing")
	}
	f := v.Res.(*resources.File)
	if f.Path != "/tmp/graft-test/f1" || f.Content == nil || *f.Content != "hello\n" || f.Mode != "0600" {
		t.Errorf("f1 decoded wrong: %+v", f)
	}
	if v2, _ := g.Vertex(engine.ID{Kind: "file", Name: "f2"}); !v2.Meta.Noop {
		t.Error("meta noop not parsed")
	}
	if e := g.Edges()[1]; !e.Notify || e.From.Kind != "file" {
		t.Errorf("second edge: %+v", e)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", res.Warnings)
	}
}

func TestParseSendRecv(t *testing.T) {
	src := `
resources:
  password:
  - name: db
    length: 16
  file:
  - name: /tmp/db.pass
    mode: "0600"
edges:
- from: {kind: password, name: db, key: password}
  to: {kind: file, name: /tmp/db.pass, key: content}
`
	res, err := yamlgraph.Parse("sr.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	e := res.Graph.Edges()[0]
	if len(e.Keys) != 1 || e.Keys[0] != (engine.KeyMap{Send: "password", Recv: "content"}) {
		t.Errorf("got keys %+v", e.Keys)
	}
}

// Every metaparameter key parses with mgmt's names, types and units.
func TestMetaParamsParse(t *testing.T) {
	src := `
resources:
  noop:
  - name: all
    meta:
      noop: true
      retry: -1
      retryreset: true
      delay: 1500
      timeout: 30000
      poll: 10
      limit: 0.5
      burst: 2
      sema: ["db", "pool:3"]
      rewatch: true
      autoedge: false
      autogroup: false
      realize: true
      reset: true
  - name: defaults
  - name: inf
    meta: {limit: .inf}
`
	res, err := yamlgraph.Parse("meta.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := res.Graph.Vertex(engine.ID{Kind: "noop", Name: "all"})
	want := engine.Meta{Noop: true, Retry: -1, RetryReset: true, Delay: 1500 * time.Millisecond,
		Timeout: 30 * time.Second, Poll: 10 * time.Second, Limit: 0.5, Burst: 2,
		Sema: []string{"db", "pool:3"}, Rewatch: true, NoAutoEdge: true, NoAutoGroup: true}
	if !v.Meta.Equal(want) {
		t.Errorf("got %+v\nwant %+v", v.Meta, want)
	}
	if d, _ := res.Graph.Vertex(engine.ID{Kind: "noop", Name: "defaults"}); !d.Meta.Equal(engine.Meta{}) {
		t.Errorf("defaults: got %+v, want the zero Meta", d.Meta)
	}
	if i, _ := res.Graph.Vertex(engine.ID{Kind: "noop", Name: "inf"}); i.Meta.Limit != rate.Inf {
		t.Errorf("limit .inf: got %v", i.Meta.Limit)
	}
	if len(res.Warnings) != 2 {
		t.Errorf("want warnings for realize and reset, got %v", res.Warnings)
	}
}

// mgmt's own examples carry keys mgmt has dropped; they load with warnings.
func TestMgmtLegacyKeysWarn(t *testing.T) {
	src := `---
graph: mygraph
remote: ssh://root:password@hostname:22
resources:
  exec:
  - name: exec1
    cmd: sleep 10s
    shell: ''
    timeout: 0
    watchcmd: ''
    watchshell: ''
    ifcmd: ''
    ifshell: ''
    pollint: 0
    state: present
    meta:
      autoedge: true
      autogroup: false
edges: []
`
	res, err := yamlgraph.Parse("exec1.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.String())
	}
	for _, want := range []string{"exec1.yaml:3:1: remote", "exec1.yaml:9:5:", "exec1.yaml:14:5:", "exec1.yaml:15:5:"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("no warning containing %q in %q", want, got)
		}
	}
}

// Every kind of bad graph is an error naming the file, the line and what
// was expected.
func TestBadGraphsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown kind", `
resources:
  flie:
  - name: a
`, `bad.yaml:3:3: resources: unknown resource kind "flie"`},
		{"unknown key", `
resources:
  file:
  - name: a
    path: /tmp/a
    contnet: x
`, `bad.yaml:6:5: file "a": unknown key "contnet" (did you mean "content"?`},
		{"unknown top-level key", `
graph: g
resource: {}
`, `bad.yaml:3:1: unknown key "resource" (did you mean "resources"?`},
		{"edge to a missing resource", `
resources:
  file:
  - name: a
    path: /tmp/a
edges:
- name: e1
  from: {kind: file, name: a}
  to: {kind: file, name: b}
`, `bad.yaml:9:7: edge "e1": to: no resource file "b" in this graph`},
		{"edge without to", `
resources:
  file:
  - name: a
    path: /tmp/a
edges:
- from: {kind: file, name: a}
`, `bad.yaml:7:3: edges[0]: missing to`},
		{"cycle", `
resources:
  noop:
  - name: a
  - name: b
  - name: c
edges:
- from: {kind: noop, name: a}
  to: {kind: noop, name: b}
- from: {kind: noop, name: b}
  to: {kind: noop, name: c}
- from: {kind: noop, name: c}
  to: {kind: noop, name: a}
`, `bad.yaml:8: edges: cycle: noop[a] -> noop[b] -> noop[c] -> noop[a] (edges at lines 8, 10, 12)`},
		{"duplicate", `
resources:
  noop:
  - name: a
  - name: b
  - name: a
`, `bad.yaml:6:11: noop "a": duplicate resource (first defined at line 4)`},
		{"missing name", `
resources:
  noop:
  - comment: x
`, `bad.yaml:4:5: resources.noop[0]: missing name`},
		{"wrong type", `
resources:
  timer:
  - name: t
    interval: soon
`, `bad.yaml:5:15: timer "t": interval: want a whole number from 0 to 4294967295, got the value "soon"`},
		{"validation", `
resources:
  file:
  - name: a
    path: relative/path
`, `bad.yaml:5:5: file "a": path: "relative/path" is not absolute`},
		{"bad mode", `
resources:
  file:
  - name: /tmp/a
    mode: "u=rwz"
`, `bad.yaml:5:5: file "/tmp/a": mode: "u=rwz": clause "u=rwz": unknown permission 'z'`},
		{"unknown meta", `
resources:
  noop:
  - name: a
    meta: {retyr: 3}
`, `bad.yaml:5:12: noop "a": meta: unknown key "retyr" (did you mean "retry"?`},
		{"unknown meta lists export", `
resources:
  noop:
  - name: a
    meta: {exprot: true}
`, `bad.yaml:5:12: noop "a": meta: unknown key "exprot" (did you mean "export"?`},
		{"bad meta type", `
resources:
  noop:
  - name: a
    meta:
      delay: soon
`, `bad.yaml:6:14: noop "a": meta: delay: want a whole number, 0 or more, got the value "soon"`},
		{"limit without burst", `
resources:
  noop:
  - name: a
    meta:
      limit: 2
`, `bad.yaml:6:7: noop "a": meta: burst: must be at least 1 when limit is set`},
		{"bad sema", `
resources:
  noop:
  - name: a
    meta:
      sema: ["42"]
`, `bad.yaml:6:7: noop "a": meta: sema: "42": the id is a bare number`},
		{"sema count conflict", `
resources:
  noop:
  - name: a
    meta: {sema: ["db:2"]}
  - name: b
    meta: {sema: ["db:3"]}
`, `bad.yaml:6:11: noop "b": meta: sema "db:3": noop[a] holds semaphore "db" with count 2`},
		{"duplicate key", `
resources:
  noop:
  - name: a
    name: b
`, `bad.yaml:5:5: resources.noop[0]: key "name" given twice (first at line 4)`},
		{"syntax", "resources:\n  noop: [\n", `bad.yaml:2: did not find expected node content`},
		{"not a mapping", "- a\n- b\n", `bad.yaml:1:1: want a mapping with graph, resources and edges, got a list`},
		{"empty", "", `bad.yaml: the file is empty`},
		{"send/recv type mismatch", `
resources:
  exec:
  - name: x
    cmd: "true"
  timer:
  - name: t
    interval: 5
edges:
- from: {kind: exec, name: x, key: stdout}
  to: {kind: timer, name: t, key: interval}
`, `bad.yaml:10:3: edge exec[x] -> timer[t]: send stdout -> recv interval: exec[x] sends stdout string but timer[t] parameter interval is uint32`},
		{"send/recv unknown key", `
resources:
  exec:
  - name: x
    cmd: "true"
  file:
  - name: /tmp/f
edges:
- from: {kind: exec, name: x, key: stdot}
  to: {kind: file, name: /tmp/f, key: content}
`, `bad.yaml:9:3: edge exec[x] -> file[/tmp/f]: send stdot -> recv content: exec[x] sends no "stdot" (it sends: output, stderr, stdout)`},
		{"send/recv one key", `
resources:
  exec:
  - name: x
    cmd: "true"
  file:
  - name: /tmp/f
edges:
- from: {kind: exec, name: x, key: stdout}
  to: {kind: file, name: /tmp/f}
`, `bad.yaml:9:3: edges[0]: send/recv needs a key on both from and to`},
		{"exported", `
resources:
  file:
  - name: "@@a"
`, `bad.yaml:4:5: file "@@a": path: "a" is not absolute`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := yamlgraph.Parse("bad.yaml", []byte(tc.src), registry())
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
			var ye *yamlgraph.Error
			if !errors.As(err, &ye) || ye.File != "bad.yaml" {
				t.Errorf("error %v is not a *yamlgraph.Error naming the file", err)
			}
		})
	}
}

// Several problems are all reported at once.
func TestAllProblemsReported(t *testing.T) {
	src := `
resources:
  file:
  - name: a
    bogus: 1
  nope:
  - name: b
`
	_, err := yamlgraph.Parse("g.yaml", []byte(src), registry())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"g.yaml:5:5:", "g.yaml:6:3:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLoadFromDisk(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(p, []byte("resources:\n  noop:\n  - name: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := yamlgraph.Load(p, registry())
	if err != nil {
		t.Fatal(err)
	}
	if res.Graph.Name != "g" || res.Graph.Len() != 1 {
		t.Errorf("got graph %q with %d vertices", res.Graph.Name, res.Graph.Len())
	}
	if _, err := yamlgraph.Load(filepath.Join(dir, "missing.yaml"), registry()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

// The examples shipped with graft all load.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		if _, err := yamlgraph.Load(f, registry()); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("graph: g\nresources:\n  file:\n  - name: /tmp/a\n    content: x\nedges: []\n"))
	f.Add([]byte("resources:\n  noop:\n  - name: a\n  - name: b\nedges:\n- from: {kind: noop, name: a}\n  to: {kind: noop, name: b}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("resources: {exec: [{name: x, cmd: [1], meta: {noop: 3}}]}"))
	reg := registry()
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := yamlgraph.Parse("fuzz.yaml", data, reg)
		if err == nil && res.Graph == nil {
			t.Fatal("nil graph without an error")
		}
	})
}

// Files depend on the file resources managing their parent directories, and
// exec on those for its cwd and creates path, unless meta autoedge is off.
func TestAutoEdgesFromYAML(t *testing.T) {
	src := `
resources:
  file:
  - name: conf
    path: /srv/app/conf
    content: x
  - name: appdir
    path: /srv/app/
    state: exists
  - name: loose
    path: /srv/app/loose
    meta: {autoedge: false}
  exec:
  - name: build
    cmd: make
    cwd: /srv/app
    creates: /srv/app/conf
`
	res, err := yamlgraph.Parse("auto.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range res.Graph.Edges() {
		got = append(got, e.From.Name+"->"+e.To.Name)
	}
	want := []string{"appdir->conf", "appdir->build", "conf->build"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("automatic edges %v, want %v", got, want)
	}
}

// Groupable resources merge into one vertex.
func TestAutoGroupFromYAML(t *testing.T) {
	src := `
resources:
  noop:
  - name: a
  - name: b
  - name: c
    meta: {autogroup: false}
  print:
  - name: p1
    msg: one
  - name: p2
    msg: two
  - name: p3
    msg: three
    refresh_only: true
`
	res, err := yamlgraph.Parse("group.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range res.Graph.Vertices() {
		ids = append(ids, v.ID.String())
	}
	if want := "noop[a] noop[c] print[p1] print[p3]"; strings.Join(ids, " ") != want {
		t.Errorf("vertices %v, want %s", ids, want)
	}
}
