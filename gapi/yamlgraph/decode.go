package yamlgraph

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
)

// DecodeExport rebuilds a resource another host exported: kind and name
// (without the @@) as exported, data an Export's Data. It is decoded and
// validated as the exporting file's resource was, with the same errors.
func DecodeExport(reg *engine.Registry, kind, name string, data []byte) (engine.Vertex, error) {
	return decodeExport(reg, kind, name, data, "")
}

// CollectDecoder returns the gapi.Decoder of collected resources: each is
// decoded as DecodeExport does, then the collect pattern applied. For kind
// file the pattern is the directory the file goes in: the exported path's
// directory is replaced by it, keeping the base name (and a trailing slash,
// which makes a directory); an empty pattern keeps the exported path. Other
// kinds' patterns only select resources by name.
func CollectDecoder(reg *engine.Registry) gapi.Decoder {
	return func(kind, name string, data []byte, pattern string) (engine.Vertex, error) {
		return decodeExport(reg, kind, name, data, pattern)
	}
}

func decodeExport(reg *engine.Registry, kindName, name string, data []byte, pattern string) (engine.Vertex, error) {
	where := fmt.Sprintf("%s %q", kindName, name)
	p := &parser{l: errList{file: "exported " + where}, reg: reg}
	kind, ok := reg.Lookup(kindName)
	if !ok {
		return engine.Vertex{}, fmt.Errorf("exported %s: unknown resource kind %q (known kinds: %s)",
			where, kindName, strings.Join(reg.Names(), ", "))
	}
	if name == "" {
		return engine.Vertex{}, fmt.Errorf("exported %s: name is empty", where)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.l.fromYAML(err, where)
		return engine.Vertex{}, p.l.err()
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return engine.Vertex{}, fmt.Errorf("exported %s: no parameters; want a mapping", where)
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.l.add(root, where, "want a mapping of parameters, got %s", describe(root))
		return engine.Vertex{}, p.l.err()
	}
	if kindName == fileKind && pattern != "" {
		setFileDir(root, name, pattern)
	}
	v, _, ok := p.decodeResource(kind, name, root, p.pairs(root, where), where)
	if !ok {
		return engine.Vertex{}, p.l.err()
	}
	return v, nil
}

// setFileDir points a file resource's path (its name when it has none)
// into dir, keeping its base name and any trailing slash.
// An exported file with a dirname override gets the directory as its
// dirname instead, since that override wins over the path's directory.
func setFileDir(m *yaml.Node, name, dir string) {
	var at *yaml.Node
	old := name
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := resolve(m.Content[i])
		if k.Kind != yaml.ScalarNode {
			continue
		}
		switch k.Value {
		case "path":
			at = resolve(m.Content[i+1])
			old = at.Value
		case "dirname":
			*resolve(m.Content[i+1]) = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.TrimSuffix(dir, "/") + "/"}
			return
		}
	}
	p := path.Join(dir, path.Base(old))
	if strings.HasSuffix(old, "/") {
		p += "/"
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}
	if at == nil {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "path"}, v)
		return
	}
	*at = *v
}
