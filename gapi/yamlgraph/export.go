package yamlgraph

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
)

// exportMeta is a resource's export metaparameter: the hosts it is exported
// to, every host with "*".
type exportMeta struct {
	at    *yaml.Node // the export key; nil when not given
	all   bool
	hosts []string // sorted, without duplicates
}

// exported reports whether the metaparameter exports the resource.
func (x exportMeta) exported() bool { return x.all || len(x.hosts) > 0 }

// exportMeta parses the value of the export metaparameter: a list of host
// names, or ['*'] for every host. An empty list exports nothing.
func (p *parser) exportMeta(k, v *yaml.Node, where string) (exportMeta, bool) {
	x := exportMeta{at: k}
	if isNull(v) {
		return x, true
	}
	if v.Kind != yaml.SequenceNode {
		p.l.add(v, where, "want a list of host names, or ['*'] for every host, got %s", describe(v))
		return x, false
	}
	ok := true
	for _, item := range v.Content {
		item = resolve(item)
		h, good := p.scalar(item, where)
		switch {
		case !good:
			ok = false
		case h == "*":
			x.all = true
		case h == "" || strings.ContainsAny(h, "/ \t\n") || len(h) > maxHostName:
			p.l.add(item, where, "host name %s: want 1 to %d characters, no slashes or spaces", quote(h), maxHostName)
			ok = false
		default:
			x.hosts = append(x.hosts, h)
		}
	}
	slices.Sort(x.hosts)
	x.hosts = slices.Compact(x.hosts)
	if x.all {
		x.hosts = nil
	}
	return x, ok
}

// maxHostName bounds a host name, as the cluster does.
const maxHostName = 256

// addExport records an exported resource, kvs as the file gives it. Its
// Data is its mapping without the name and the export metaparameter: the
// collecting host decodes it as this file's resource was decoded.
func (p *parser) addExport(kind, name string, kvs []pair, x exportMeta, nameNode *yaml.Node, where string) {
	id := engine.ID{Kind: kind, Name: name}
	if first, dup := p.exportAt[id]; dup {
		p.l.add(nameNode, where, "exported twice as %s %q (first at line %d)", kind, name, first.Line)
		return
	}
	p.exportAt[id] = nameNode
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, kv := range kvs {
		switch kv.key {
		case "name":
		case "meta":
			meta := withoutKey(kv.v, "export")
			if meta.Kind != yaml.MappingNode || len(meta.Content) > 0 {
				m.Content = append(m.Content, kv.k, meta)
			}
		default:
			m.Content = append(m.Content, kv.k, kv.v)
		}
	}
	budget := maxExportNodes
	data, err := yaml.Marshal(copyNode(m, &budget))
	switch {
	case budget < 0:
		p.l.add(nameNode, where, "too large to export: more than %d YAML nodes once aliases are expanded", maxExportNodes)
		return
	case err != nil:
		p.l.add(nameNode, where, "cannot encode for export: %v", err)
		return
	case len(data) > gapi.MaxExportData:
		p.l.add(nameNode, where, "too large to export: %d bytes encoded, at most %d", len(data), gapi.MaxExportData)
		return
	}
	p.exports = append(p.exports, gapi.Export{Kind: kind, Name: name, Data: data, Hosts: x.hosts})
}

// maxExportNodes bounds the YAML nodes of one exported resource, aliases
// expanded (an alias bomb must not make the encoding explode).
const maxExportNodes = 1 << 16

// withoutKey returns mapping n without key (n itself if it is no mapping).
func withoutKey(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			continue
		}
		out.Content = append(out.Content, n.Content[i], n.Content[i+1])
	}
	return &out
}

// copyNode copies n deeply with every alias replaced by what it names and
// no anchors, so that it encodes on its own. budget counts down the nodes
// copied; it goes negative (and copying stops) when it runs out.
func copyNode(n *yaml.Node, budget *int) *yaml.Node {
	n = resolve(n)
	*budget--
	if *budget < 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	out := *n
	out.Anchor, out.Alias = "", nil
	out.HeadComment, out.LineComment, out.FootComment = "", "", ""
	out.Content = make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		out.Content = append(out.Content, copyNode(c, budget))
	}
	return &out
}

// collect parses the top-level collect list: {kind, pattern} entries.
func (p *parser) collect(n *yaml.Node) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.l.add(n, "collect", "want a list of {kind, pattern}, got %s", describe(n))
		return
	}
	fileAt := (*yaml.Node)(nil)
	for i, item := range n.Content {
		item = resolve(item)
		where := fmt.Sprintf("collect[%d]", i)
		if item.Kind != yaml.MappingNode {
			p.l.add(item, where, "want a mapping with kind and pattern, got %s", describe(item))
			continue
		}
		var c gapi.Collect
		var kindAt *yaml.Node
		ok := true
		for _, kv := range p.pairs(item, where) {
			switch kv.key {
			case "kind":
				c.Kind, ok = p.scalar(kv.v, where+".kind")
				c.Kind, kindAt = strings.ToLower(c.Kind), kv.v
			case "pattern":
				c.Pattern, ok = p.scalar(kv.v, where+".pattern")
			default:
				p.unknownKey(kv.k, where, kv.key, []string{"kind", "pattern"})
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		if kindAt == nil {
			p.l.add(item, where, "missing kind")
			continue
		}
		if _, known := p.reg.Lookup(c.Kind); !known {
			p.l.add(kindAt, where, "unknown resource kind %q (known kinds: %s)", c.Kind, strings.Join(p.reg.Names(), ", "))
			continue
		}
		if !p.checkPattern(c, item, fileAt, where) {
			continue
		}
		if c.Kind == fileKind {
			fileAt = item
		}
		p.collects = append(p.collects, c)
	}
}

// fileKind is the kind whose collect pattern is a directory.
const fileKind = "file"

// checkPattern checks a collect's pattern: for file, an absolute directory
// (or empty, to keep exported paths) and one collect of files in all; for
// other kinds, a glob on the resource name.
func (p *parser) checkPattern(c gapi.Collect, item, fileAt *yaml.Node, where string) bool {
	if c.Kind != fileKind {
		if _, err := path.Match(c.Pattern, ""); err != nil {
			p.l.add(item, where, "pattern %s: want a glob on resource names (as path.Match takes): %v", quote(c.Pattern), err)
			return false
		}
		return true
	}
	if fileAt != nil {
		p.l.add(item, where, "files are collected once, into one directory (first collect of files at line %d)", fileAt.Line)
		return false
	}
	if c.Pattern != "" && !path.IsAbs(c.Pattern) {
		p.l.add(item, where, "pattern %s: for kind file, want the absolute directory collected files go in", quote(c.Pattern))
		return false
	}
	return true
}
