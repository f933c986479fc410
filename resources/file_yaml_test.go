package resources

import (
	"path/filepath"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// A graph in mgmt's YAML with every parameter of the rest of file decodes
// into the fields, and the graph (a purged directory holding a file the
// graph manages) is valid.
func TestFileYAMLDecodesSourcePurgeFragmentsSymlinkAndOverrides(t *testing.T) {
	src := `---
graph: g
resources:
  file:
  - name: tree
    path: "/srv/www/"
    source: "/srv/src/"
    recurse: true
    force: true
  - name: conf
    path: "/etc/app/"
    recurse: true
    purge: true
  - name: main
    path: "/etc/app/main.conf"
    fragments:
    - "/etc/app.head"
    - "/etc/app.d/"
  - name: link
    path: "/etc/app/current"
    source: "main.conf"
    symlink: true
    state: exists
  - name: moved
    path: "/tmp/x/f"
    dirname: "/etc/app/"
    basename: "g.conf"
    content: "x"
`
	res, err := yamlgraph.Parse("g.yaml", []byte(src), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *File {
		v, ok := res.Graph.Vertex(engine.ID{Kind: "file", Name: name})
		if !ok {
			t.Fatalf("no file %s", name)
		}
		return v.Res.(*File)
	}
	if f := get("tree"); f.Source != "/srv/src/" || !f.Recurse || !f.Force {
		t.Errorf("tree: %+v", f)
	}
	if f := get("conf"); !f.Purge || !f.Recurse {
		t.Errorf("conf: %+v", f)
	}
	if f := get("main"); len(f.Fragments) != 2 || f.Fragments[1] != "/etc/app.d/" {
		t.Errorf("main: %+v", f)
	}
	if f := get("link"); !f.Symlink || f.Source != "main.conf" {
		t.Errorf("link: %+v", f)
	}
	if got := get("moved").path(); got != "/etc/app/g.conf" {
		t.Errorf("moved: path %q", got)
	}
}

// Collecting a file that has a dirname override puts it in the collect
// pattern's directory all the same.
func TestCollectedFileWithDirnameGoesInThePatternDirectory(t *testing.T) {
	decode := yamlgraph.CollectDecoder(NewRegistry(Deps{}))
	for _, tc := range []struct{ data, want string }{
		{"path: /a/f\ndirname: /b/\ncontent: x\n", "/srv/in/f"},
		{"path: /a/f\ndirname: /b/\nbasename: g\ncontent: x\n", "/srv/in/g"},
		{"path: /a/f\nbasename: g\ncontent: x\n", "/srv/in/g"},
	} {
		v, err := decode("file", "f", []byte(tc.data), "/srv/in")
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Res.(*File).path(); got != filepath.Clean(tc.want) {
			t.Errorf("%q collected into /srv/in: path %q, want %q", tc.data, got, tc.want)
		}
	}
}

// mgmt's examples/yaml file0.yaml, file4.yaml, deep-dirs.yaml and file1.yaml,
// as they are, with the number of warnings each gets: file1's absent file
// has content, which is ignored with a warning. (mgmt's examples that use
// source do so in ways mgmt refuses: graft check's test lists them.)
var mgmtFileExamples = map[string]int{"file0.yaml": 0, "file4.yaml": 0, "deep-dirs.yaml": 0, "file1.yaml": 1}

func TestMgmtFileExamplesLoad(t *testing.T) {
	for name, warnings := range mgmtFileExamples {
		res, err := yamlgraph.Parse(name, mgmtExample(t, name), NewRegistry(Deps{}))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(res.Warnings) != warnings {
			t.Errorf("%s: warnings %v, want %d", name, res.Warnings, warnings)
		}
	}
}
