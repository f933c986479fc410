package yamlgraph

import (
	"fmt"
	"os"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/graftcm/graft/engine"
)

// templateKey is the top-level key that makes a graph a template: with
// `template: true`, every string value in the file is a Go text/template,
// expanded for the host that reads it before the graph is built. Without
// it nothing is expanded: a `{{` or a shell's `${hostname}` stays as
// written.
const templateKey = "template"

// Options change how a graph file is read.
type Options struct {
	// Hostname is what {{ .Hostname }} expands to in a templated graph;
	// empty means this machine's host name.
	Hostname string
}

// TemplateData is what the actions of a templated graph see.
type TemplateData struct {
	// Hostname is the name of the host the graph is built for (graft run
	// --hostname).
	Hostname string
}

// LoadWith reads and parses the graph file at path, as Load does, with o.
func LoadWith(path string, reg *engine.Registry, o Options) (*Result, error) {
	data, err := readFile(path, path)
	if err != nil {
		return nil, err
	}
	return ParseWith(path, data, reg, o)
}

// templated reports whether the document's root mapping says template:
// true, reporting a value that is not a boolean.
func (p *parser) templated(root *yaml.Node) bool {
	// The root's keys are checked (for duplicates, say) as the graph is
	// read; this looks only for the first template key.
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind != yaml.ScalarNode || k.Value != templateKey {
			continue
		}
		v := resolve(root.Content[i+1])
		var on bool
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&on) != nil {
			p.l.add(v, templateKey, "want true or false, got %s", describe(v))
			return false
		}
		return on
	}
	return false
}

// expand expands, in place, the actions of every string value under n
// (mapping keys are left as they are), naming the value's path in errors.
// Aliases are not followed: the node they stand for is expanded where it
// is defined, once.
func (p *parser) expand(n *yaml.Node, path string, e *expansion) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if path == "" && k == templateKey {
				continue
			}
			p.expand(n.Content[i+1], joinPath(path, k), e)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.expand(c, fmt.Sprintf("%s[%d]", path, i), e)
		}
	case yaml.ScalarNode:
		if n.ShortTag() != "!!str" || !strings.Contains(n.Value, "{{") {
			return
		}
		t, err := template.New(path).Option("missingkey=error").Parse(n.Value)
		if err != nil {
			p.l.add(n, path, "%v", err)
			return
		}
		e.b.Reset()
		if err := t.Execute(e, e.data); err != nil {
			p.l.add(n, path, "%v", err)
			return
		}
		n.Value = e.b.String()
	}
}

// expansion is where a graph's templates are expanded: their output, all
// told, is bounded as a graph file is, so that a small file cannot expand
// into more than a host can hold.
type expansion struct {
	data TemplateData
	left int // bytes the templates may still write
	b    strings.Builder
}

func (e *expansion) Write(b []byte) (int, error) {
	if len(b) > e.left {
		return 0, fmt.Errorf("the graph's templates expand to more than %d bytes", MaxFileSize)
	}
	e.left -= len(b)
	return e.b.Write(b)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// templateData returns what a templated graph read with o sees.
func templateData(o Options) (TemplateData, error) {
	if o.Hostname != "" {
		return TemplateData{Hostname: o.Hostname}, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return TemplateData{}, fmt.Errorf("expanding the graph's templates needs a host name: %w", err)
	}
	return TemplateData{Hostname: h}, nil
}

// expandRoot expands a templated graph's strings for the host the parser
// reads it for, and reports whether every one expanded.
func (p *parser) expandRoot(root *yaml.Node) bool {
	data, err := templateData(p.opts)
	if err != nil {
		p.l.add(root, templateKey, "%v", err)
		return false
	}
	before := len(p.l.errs)
	p.expand(root, "", &expansion{data: data, left: MaxFileSize})
	return len(p.l.errs) == before
}
