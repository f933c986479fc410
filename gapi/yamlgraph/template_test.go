package yamlgraph_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
)

const templatedGraph = `
template: true
graph: web
resources:
  file:
  - name: "motd-{{ .Hostname }}"
    path: "/tmp/graft-test/{{ .Hostname }}/motd"
    content: "hello from {{ .Hostname }}\n"
    meta:
      sema: ["disk-{{ .Hostname }}"]
  exec:
  - name: x
    cmd: echo
    args: ["{{ .Hostname }}", "${hostname}"]
edges:
- name: "e-{{ .Hostname }}"
  from: {kind: file, name: "motd-{{ .Hostname }}"}
  to: {kind: exec, name: x}
`

// With template: true, every string value (parameters, list items, meta,
// names and edges) is expanded for the host the graph is read for; text
// without actions, such as a shell's ${hostname}, stays.
func TestTemplatedGraphIsExpandedForTheHost(t *testing.T) {
	for _, host := range []string{"alpha", "beta"} {
		res, err := yamlgraph.ParseWith("web.yaml", []byte(templatedGraph), registry(), yamlgraph.Options{Hostname: host})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := res.Graph.Vertex(engine.ID{Kind: "file", Name: "motd-" + host})
		if !ok {
			t.Fatalf("%s: no file motd-%s in %v", host, host, res.Graph.Vertices())
		}
		f := v.Res.(*resources.File)
		if f.Path != "/tmp/graft-test/"+host+"/motd" || *f.Content != "hello from "+host+"\n" {
			t.Errorf("%s: file path %q, content %q", host, f.Path, *f.Content)
		}
		if !slices.Equal(v.Meta.Sema, []string{"disk-" + host}) {
			t.Errorf("%s: meta sema %v", host, v.Meta.Sema)
		}
		x, _ := res.Graph.Vertex(engine.ID{Kind: "exec", Name: "x"})
		if args := x.Res.(*resources.Exec).Args; !slices.Equal(args, []string{host, "${hostname}"}) {
			t.Errorf("%s: exec args %q", host, args)
		}
		if es := res.Graph.Edges(); len(es) != 1 || es[0].From.Name != "motd-"+host {
			t.Errorf("%s: edges %+v", host, es)
		}
	}
}

// Without template: true (or with template: false) nothing is expanded: a
// graph written before templates existed keeps its meaning.
func TestGraphWithoutTheTemplateKeyIsNotExpanded(t *testing.T) {
	for _, head := range []string{"", "template: false\n"} {
		src := head + `
resources:
  exec:
  - name: x
    shell: /bin/sh
    cmd: 'echo "${hostname} {{ .Hostname }}"'
`
		res, err := yamlgraph.ParseWith("plain.yaml", []byte(src), registry(), yamlgraph.Options{Hostname: "alpha"})
		if err != nil {
			t.Fatalf("%q: %v", head, err)
		}
		x, _ := res.Graph.Vertex(engine.ID{Kind: "exec", Name: "x"})
		if cmd := x.Res.(*resources.Exec).Cmd; cmd != `echo "${hostname} {{ .Hostname }}"` {
			t.Errorf("%q: cmd became %q", head, cmd)
		}
	}
}

// A template that does not parse or execute is an error naming the file,
// the line and the parameter; a template key that is not a boolean too.
func TestTemplateErrorsNameFileLineAndParameter(t *testing.T) {
	cases := []struct{ src, want string }{
		{"template: true\nresources:\n  file:\n  - name: f\n    path: /tmp/f\n    content: \"{{ .Hostnme }}\"\n",
			"t.yaml:6:14: resources.file[0].content: template: resources.file[0].content:1:3: executing"},
		{"template: true\nresources:\n  file:\n  - name: f\n    path: \"/tmp/{{ .Hostname\"\n",
			"t.yaml:5:11: resources.file[0].path: template: resources.file[0].path:1: unclosed action"},
		{"template: yes please\nresources: {}\n", "t.yaml:1:11: template: want true or false"},
	}
	for _, c := range cases {
		_, err := yamlgraph.ParseWith("t.yaml", []byte(c.src), registry(), yamlgraph.Options{Hostname: "h"})
		var pe *yamlgraph.Error
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
}

// A template's output is bounded as a graph file is: a small deploy that
// expands into gigabytes (a range over a large number) is an error naming
// the parameter, on every host, before it takes the host's memory.
func TestTemplateExpandingPastTheFileLimitIsRefused(t *testing.T) {
	src := "template: true\nresources:\n  file:\n  - name: f\n    path: /tmp/f\n" +
		"    content: \"{{ range 2000 }}{{ printf \\\"%010000d\\\" 0 }}{{ end }}\"\n"
	_, err := yamlgraph.ParseWith("t.yaml", []byte(src), registry(), yamlgraph.Options{Hostname: "h"})
	want := "t.yaml:6:14: resources.file[0].content: "
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("error %v, want one containing %q and the limit in bytes", err, want)
	}
}
