package yamlgraph_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
)

const exportSrc = `---
graph: shared
resources:
  file:
  - name: "@@fa"
    path: /tmp/x/fa
    content: &c |
      i am fa
    mode: "0640"
    meta: {noop: true, retry: 3}
  - name: fb
    path: /tmp/x/fb
    content: *c
    meta:
      export: [hostb, hosta, hostb]
  - name: fc
    path: /tmp/x/fc
    meta: {export: ['*', hosta]}
  - name: fd
    path: /tmp/x/fd
    meta: {export: []}
  noop:
  - name: local
collect:
- kind: file
  pattern: /srv/in
- kind: noop
  pattern: "web*"
`

// A resource named @@name, or with the export metaparameter, leaves this
// host's graph and becomes an Export carrying its parameters and
// metaparameters (less its name and the export metaparameter) and the
// hosts it goes to; export: [] exports nothing; collect entries come out
// as written.
func TestExportedResourcesLeaveTheGraphWithTheirParameters(t *testing.T) {
	res, err := yamlgraph.Parse("shared.yaml", []byte(exportSrc), registry())
	if err != nil {
		t.Fatal(err)
	}
	var local []string
	for _, v := range res.Graph.Vertices() {
		local = append(local, v.ID.String())
	}
	slices.Sort(local)
	if want := []string{"file[fd]", "noop[local]"}; !slices.Equal(local, want) {
		t.Errorf("local resources %v, want %v", local, want)
	}
	type exp struct{ kind, name, hosts string }
	var got []exp
	for _, x := range res.Exports {
		got = append(got, exp{x.Kind, x.Name, strings.Join(x.Hosts, ",")})
	}
	want := []exp{{"file", "fa", ""}, {"file", "fb", "hosta,hostb"}, {"file", "fc", ""}}
	if !slices.Equal(got, want) {
		t.Errorf("exports %v, want %v", got, want)
	}
	if want := []gapi.Collect{{Kind: "file", Pattern: "/srv/in"}, {Kind: "noop", Pattern: "web*"}}; !slices.Equal(res.Collects, want) {
		t.Errorf("collects %v, want %v", res.Collects, want)
	}
	for _, x := range res.Exports {
		if strings.Contains(string(x.Data), "export") || strings.Contains(string(x.Data), "name") {
			t.Errorf("%s's data keeps its name or export metaparameter:\n%s", x.Name, x.Data)
		}
	}
	// The data decodes, on any host, to the resource as written.
	v, err := yamlgraph.DecodeExport(registry(), "file", "fa", res.Exports[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	f := v.Res.(*resources.File)
	if v.ID != (engine.ID{Kind: "file", Name: "fa"}) || f.Path != "/tmp/x/fa" || f.Content == nil ||
		*f.Content != "i am fa\n" || f.Mode != "0640" {
		t.Errorf("decoded %v: %+v", v.ID, f)
	}
	if !v.Meta.Noop || v.Meta.Retry != 3 {
		t.Errorf("decoded metaparameters %+v, want noop and retry 3", v.Meta)
	}
	// An alias to an anchor elsewhere in the file is carried as its value.
	v, err = yamlgraph.DecodeExport(registry(), "file", "fb", res.Exports[1].Data)
	if err != nil {
		t.Fatal(err)
	}
	if c := v.Res.(*resources.File).Content; c == nil || *c != "i am fa\n" {
		t.Errorf("fb's content through an alias: %v", c)
	}
}

// An exported resource is checked on the exporting host as a local one
// is, and the problems of export and collect entries name file and line;
// an edge cannot reach an exported resource, which runs elsewhere.
func TestExportAndCollectErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"edge to an export", `
resources:
  noop:
  - name: "@@n"
  - name: m
edges:
- from: {kind: noop, name: m}
  to: {kind: noop, name: "@@n"}
`, `bad.yaml:8:7: edges[0]: to: noop "@@n" is exported: it does not run on this host, so no edge can reach it`},
		{"edge to an export by meta", `
resources:
  noop:
  - name: n
    meta: {export: [h1]}
  - name: m
edges:
- from: {kind: noop, name: n}
  to: {kind: noop, name: m}
`, `bad.yaml:8:9: edges[0]: from: noop "n" is exported`},
		{"exported twice", `
resources:
  noop:
  - name: "@@n"
  - name: n
    meta: {export: ['*']}
`, `bad.yaml:5:11: noop "n": exported twice as noop "n" (first at line 4)`},
		{"empty after @@", `
resources:
  noop:
  - name: "@@"
`, `bad.yaml:4:11: noop "@@": name is empty after the @@ that exports it`},
		{"export not a list", `
resources:
  noop:
  - name: n
    meta: {export: "*"}
`, `bad.yaml:5:20: noop "n": meta: export: want a list of host names, or ['*'] for every host, got the value "*"`},
		{"bad host", `
resources:
  noop:
  - name: n
    meta: {export: ["a b"]}
`, `bad.yaml:5:21: noop "n": meta: export: host name "a b": want 1 to 256 characters`},
		{"invalid exported resource", `
resources:
  file:
  - name: "@@f"
    path: /tmp/f
    mode: bad
`, `bad.yaml:6:5: file "@@f": mode: "bad"`},
		{"collect unknown kind", `
collect:
- kind: nosuch
  pattern: x
`, `bad.yaml:3:9: collect[0]: unknown resource kind "nosuch"`},
		{"collect relative directory", `
collect:
- kind: file
  pattern: tmp/in
`, `bad.yaml:3:3: collect[0]: pattern "tmp/in": for kind file, want the absolute directory collected files go in`},
		{"collect files twice", `
collect:
- {kind: file, pattern: /a}
- {kind: file, pattern: /b}
`, `bad.yaml:4:3: collect[1]: files are collected once, into one directory (first collect of files at line 3)`},
		{"collect bad glob", `
collect:
- {kind: noop, pattern: "[x"}
`, `bad.yaml:3:3: collect[0]: pattern "[x": want a glob on resource names`},
		{"collect unknown key", `
collect:
- {kind: noop, patern: x}
`, `bad.yaml:3:16: collect[0]: unknown key "patern" (did you mean "pattern"?)`},
		{"collect not a list", `
collect: {kind: noop}
`, `bad.yaml:2:10: collect: want a list of {kind, pattern}, got a mapping`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := yamlgraph.Parse("bad.yaml", []byte(tc.src), registry())
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

// For kind file the collect pattern is the directory a collected file goes
// in: the exported path keeps its base name (and a directory its trailing
// slash); a file named by its path gets one; an empty pattern keeps the
// exported path.
func TestCollectedFileGoesInThePatternDirectory(t *testing.T) {
	decode := yamlgraph.CollectDecoder(registry())
	for _, tc := range []struct{ name, data, pattern, want string }{
		{"f1", "path: /etc/app/f1\ncontent: x\n", "/srv/in", "/srv/in/f1"},
		{"d1", "path: /etc/app/d1/\nstate: exists\n", "/srv/in/", "/srv/in/d1/"},
		{"/etc/app/f2", "content: x\n", "/srv/in", "/srv/in/f2"},
		{"f3", "path: /etc/app/f3\ncontent: x\n", "", "/etc/app/f3"},
	} {
		v, err := decode("file", tc.name, []byte(tc.data), tc.pattern)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := v.Res.(*resources.File).Path; got != tc.want {
			t.Errorf("%s into %q: path %q, want %q", tc.name, tc.pattern, got, tc.want)
		}
		if v.ID != (engine.ID{Kind: "file", Name: tc.name}) {
			t.Errorf("%s: id %v", tc.name, v.ID)
		}
	}
	// Other kinds' patterns select by name and change nothing.
	v, err := decode("noop", "web1", []byte("{}\n"), "web*")
	if err != nil || v.ID != (engine.ID{Kind: "noop", Name: "web1"}) {
		t.Errorf("noop: %v %v", v.ID, err)
	}
}

// Data that does not decode (from a host whose graft knows other
// parameters, say) is an error naming the exported resource and the
// parameter, as a graph file's would be.
func TestDecodeExportNamesTheExportedResource(t *testing.T) {
	for _, tc := range []struct{ kind, data, want string }{
		{"file", "path: /x\ncolour: red\n", `exported file "f":2:1: file "f": unknown key "colour"`},
		{"file", "path: relative\n", `exported file "f":1:1: file "f": path: "relative" is not absolute`},
		{"file", "- a\n", `exported file "f":1:1: file "f": want a mapping of parameters, got a list`},
		{"nosuch", "{}", `exported nosuch "f": unknown resource kind "nosuch"`},
	} {
		_, err := yamlgraph.DecodeExport(registry(), tc.kind, "f", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decode %q: got %v, want %q", tc.data, err, tc.want)
		}
	}
}

// Declare's Build parses again on every call: each graph has resources
// of its own, as the engine, which owns every graph it is handed, needs.
func TestDeclaredBuildReturnsFreshResources(t *testing.T) {
	d, _, err := yamlgraph.Declare("shared.yaml", []byte(exportSrc), registry(), yamlgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "shared" || d.Origin != "shared.yaml" || len(d.Exports) != 3 || len(d.Collects) != 2 {
		t.Fatalf("declared %+v", d)
	}
	g1, err1 := d.Build()
	g2, err2 := d.Build()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	id := engine.ID{Kind: "file", Name: "fd"}
	v1, ok1 := g1.Vertex(id)
	v2, ok2 := g2.Vertex(id)
	if !ok1 || !ok2 || v1.Res == v2.Res {
		t.Errorf("two builds share %v's resource (or lack it): %t %t", id, ok1, ok2)
	}
}
