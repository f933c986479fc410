package yamlgraph

import (
	"go.yaml.in/yaml/v3"

	"github.com/graftcm/graft/engine"
)

// pendingMeta lists mgmt's metaparameters the engine does not honour yet.
// They are rejected rather than silently ignored.
func pendingMeta() []string {
	return []string{"burst", "delay", "limit", "poll", "realize", "reset", "retry", "retryreset", "sema", "timeout"}
}

// metaKeys lists every metaparameter name.
func metaKeys() []string {
	return append([]string{"autoedge", "autogroup", "noop", "rewatch"}, pendingMeta()...)
}

// meta parses a resource's meta mapping.
func (p *parser) meta(n *yaml.Node, where string) (engine.Meta, bool) {
	var m engine.Meta
	if isNull(n) {
		return m, true
	}
	where += ": meta"
	if n.Kind != yaml.MappingNode {
		p.l.add(n, where, "want a mapping of metaparameters, got %s", describe(n))
		return m, false
	}
	ok := true
	for _, kv := range p.pairs(n, where) {
		switch kv.key {
		case "noop":
			ok = p.boolean(kv.v, where, "noop", &m.Noop) && ok
		case "rewatch":
			ok = p.boolean(kv.v, where, "rewatch", &m.Rewatch) && ok
		case "autoedge", "autogroup":
			// Both default to true. graft adds no automatic edges and groups
			// nothing yet, which is what false asks for.
			var b bool
			ok = p.boolean(kv.v, where, kv.key, &b) && ok
		default:
			if contains(pendingMeta(), kv.key) {
				p.l.add(kv.k, where, "%s is not supported by this version of graft yet", kv.key)
			} else {
				p.unknownKey(kv.k, where, kv.key, metaKeys())
			}
			ok = false
		}
	}
	return m, ok
}

func (p *parser) boolean(n *yaml.Node, where, key string, dst *bool) bool {
	if err := n.Decode(dst); err != nil {
		p.l.add(n, where, "%s: want true or false, got %s", key, describe(n))
		return false
	}
	return true
}
