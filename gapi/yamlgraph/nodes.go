package yamlgraph

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/graftcm/graft/engine"
)

// pair is one key and value of a mapping.
type pair struct {
	key  string
	k, v *yaml.Node
}

// pairs returns the entries of a mapping node, reporting keys that are not
// strings and keys given twice.
func (p *parser) pairs(n *yaml.Node, where string) []pair {
	out := make([]pair, 0, len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.l.add(k, where, "want a string key, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.l.add(k, where, "key %q given twice (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{key: k.Value, k: k, v: v})
	}
	return out
}

// scalar returns a string scalar's value, reporting anything else.
func (p *parser) scalar(n *yaml.Node, where string) (string, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool") {
		p.l.add(n, where, "want a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) unknownKey(k *yaml.Node, where, key string, known []string) {
	msg := "unknown key %q"
	args := []any{key}
	if s := suggest(key, known); s != "" {
		msg += " (did you mean %q?)"
		args = append(args, s)
	}
	msg += "; known keys: %s"
	args = append(args, strings.Join(known, ", "))
	p.l.add(k, where, msg, args...)
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names a node's type for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return "the value " + quote(n.Value)
	}
	return "something else"
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return `"` + s + `"`
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func hasKey(kvs []pair, key string) bool {
	return slices.ContainsFunc(kvs, func(kv pair) bool { return kv.key == key })
}

// grow sizes the graph and the parser's indexes for the resources and
// edges nodes (either may be nil), so that a big graph does not regrow
// them as it is read. Nodes of the wrong kind count as empty: their
// errors come later.
func (p *parser) grow(resources, edges *yaml.Node) {
	nv, ne := 0, 0
	if resources != nil && resources.Kind == yaml.MappingNode {
		for i := 1; i < len(resources.Content); i += 2 {
			if list := resolve(resources.Content[i]); list.Kind == yaml.SequenceNode {
				nv += len(list.Content)
			}
		}
	}
	if edges != nil && edges.Kind == yaml.SequenceNode {
		ne = len(edges.Content)
	}
	p.graph.Grow(nv, ne)
	p.defined, p.named = make(map[engine.ID]*yaml.Node, nv), make(map[engine.ID]bool, nv)
	p.edgeAt, p.edgeName = make(map[[2]engine.ID]*yaml.Node, ne), make(map[[2]engine.ID]string, ne)
}
