// Package yamlgraph reads resource graphs written in mgmt's YAML graph format
// and turns them into engine graphs, reporting every problem with its file,
// line and column.
//
// The format:
//
//	graph: mygraph            # the graph's name
//	comment: free text
//	resources:
//	  file:                   # a kind from the registry
//	  - name: f1              # unique within the kind
//	    path: /tmp/f1         # the kind's parameters
//	    content: "hello\n"
//	    meta: {noop: true}    # engine metaparameters
//	edges:
//	- name: e1
//	  from: {kind: file, name: f1}
//	  to: {kind: exec, name: x1}
//	  notify: true            # deliver a refresh when f1 changed something
//	- name: e2                # send/recv: x1's stdout becomes f2's content
//	  from: {kind: exec, name: x1, key: stdout}
//	  to: {kind: file, name: f2, key: content}
//	collect:                  # run what hosts export (see package gapi)
//	- kind: file
//	  pattern: /srv/in        # for file: the directory; else a name glob
//
// A resource named "@@name", or with the metaparameter export (['*'] or
// host names), is exported: it is checked as any other, then left out of
// the graph and returned in Result.Exports; an edge cannot name it.
//
// Unknown keys are errors, except keys that mgmt's own examples still carry
// for parameters mgmt has since dropped; those produce a Warning, as do
// parameters a resource accepts but ignores and timers that notify nothing.
// Two resources that manage one thing are an error naming both.
package yamlgraph

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
)

// MaxFileSize bounds the size of a graph file.
const MaxFileSize = 16 << 20

// Result is a parsed graph and the warnings its file produced.
type Result struct {
	// Graph holds the resources this host runs: exported ones are not in
	// it.
	Graph *engine.Graph
	// Exports are the resources the file exports to other hosts, sorted by
	// kind and name; each one's Data decodes with DecodeExport.
	Exports []gapi.Export
	// Collects are the file's collect entries, in the order given.
	Collects []gapi.Collect
	Warnings []Warning
}

// legacyKeyer is implemented by resources that accept, and ignore, keys that
// older mgmt graphs carry. The map goes from key to the reason it is ignored.
type legacyKeyer interface {
	LegacyKeys() map[string]string
}

// paramIgnorer is implemented by resources that accept parameters they
// ignore in some combinations, as mgmt does (a file declared absent ignores
// its content). The map goes from YAML key to why it is ignored; it is asked
// for once the resource is decoded and valid.
type paramIgnorer interface {
	IgnoredParams() map[string]string
}

// Load reads and parses the graph file at path.
func Load(path string, reg *engine.Registry) (*Result, error) {
	data, err := readFile(path, path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, reg)
}

// readFile reads the graph file at path, refusing files larger than
// MaxFileSize. name is how errors refer to the file.
func readFile(path, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unwrapPath(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unwrapPath(err))
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: more than the %d bytes a graph file may have", name, MaxFileSize)
	}
	return data, nil
}

// unwrapPath drops a PathError's own copy of the path, which the caller
// names already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// Parse parses a graph file's contents. file names it in errors. Every
// resource is validated; the graph is checked for cycles.
func Parse(file string, data []byte, reg *engine.Registry) (*Result, error) {
	return ParseWith(file, data, reg, Options{})
}

// ParseWith parses a graph file's contents, as Parse does, with o.
func ParseWith(file string, data []byte, reg *engine.Registry, o Options) (*Result, error) {
	p := &parser{
		opts:     o,
		l:        errList{file: file},
		reg:      reg,
		defined:  map[engine.ID]*yaml.Node{},
		named:    map[engine.ID]bool{},
		edgeAt:   map[[2]engine.ID]*yaml.Node{},
		edgeName: map[[2]engine.ID]string{},
		exported: map[engine.ID]*yaml.Node{},
		exportAt: map[engine.ID]*yaml.Node{},
	}
	g := p.parse(data)
	if err := p.l.err(); err != nil {
		return nil, err
	}
	p.warnSilentTimers(g)
	_, skipped := engine.AutoEdges(g)
	for _, err := range skipped {
		w := Warning{File: file, Msg: err.Error()}
		var ee *engine.EdgeError
		if errors.As(err, &ee) {
			if n := p.defined[ee.To]; n != nil {
				w.Line, w.Column = n.Line, n.Column
			}
		}
		p.l.warns = append(p.l.warns, w)
	}
	if err := g.Validate(); err != nil {
		var cyc *engine.CycleError
		if errors.As(err, &cyc) {
			return nil, p.cycleError(cyc)
		}
		return nil, p.graphError(err)
	}
	g = engine.AutoGroup(g)
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%s: after grouping resources: %w", file, err)
	}
	slices.SortFunc(p.exports, func(a, b gapi.Export) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	return &Result{Graph: g, Exports: p.exports, Collects: p.collects, Warnings: p.l.warns}, nil
}

type parser struct {
	opts    Options
	l       errList
	reg     *engine.Registry
	graph   *engine.Graph
	defined map[engine.ID]*yaml.Node // where each resource was defined
	named   map[engine.ID]bool       // every resource named, even if refused
	edgeAt  map[[2]engine.ID]*yaml.Node
	// edgeName names the first edge given between two resources, as
	// errors do: `edge "e1"`, or `edges[3]` when it has no name.
	edgeName map[[2]engine.ID]string
	// exported are the exported resources by kind and name as written
	// (with any @@), exportAt by kind and exported name; both at their
	// names.
	exported map[engine.ID]*yaml.Node
	exportAt map[engine.ID]*yaml.Node
	exports  []gapi.Export
	collects []gapi.Collect
	// keys caches paramKeys by resource type: a graph has many resources
	// of few kinds.
	keys map[reflect.Type][]string
}

func (p *parser) parse(data []byte) *engine.Graph {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.l.fromYAML(err, "")
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.l.add(nil, "", "the file is empty; want a mapping with graph, resources and edges")
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.l.add(root, "", "want a mapping with graph, resources and edges, got %s", describe(root))
		return nil
	}
	if p.templated(root) && !p.expandRoot(root) {
		return nil
	}
	name := strings.TrimSuffix(filepath.Base(p.l.file), filepath.Ext(p.l.file))
	var resources, edges *yaml.Node
	for _, kv := range p.pairs(root, "") {
		switch kv.key {
		case "graph":
			if s, ok := p.scalar(kv.v, "graph"); ok && s != "" {
				name = s
			}
		case "comment", templateKey:
		case "resources":
			resources = kv.v
		case "edges":
			edges = kv.v
		case "collect":
			p.collect(kv.v)
		case "remote":
			p.l.warn(kv.k, "remote: ignored; graft applies a graph on the host that runs it")
		default:
			p.unknownKey(kv.k, "", kv.key, []string{"collect", "comment", "edges", "graph", "resources", templateKey})
		}
	}
	p.graph = engine.NewGraph(name)
	p.grow(resources, edges)
	if resources != nil {
		p.resources(resources)
	}
	if edges != nil {
		p.edges(edges)
	}
	return p.graph
}

// resources parses the resources mapping: kind -> list of resources.
func (p *parser) resources(n *yaml.Node) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.l.add(n, "resources", "want a mapping from kind to a list of resources, got %s", describe(n))
		return
	}
	for _, kv := range p.pairs(n, "resources") {
		kind, ok := p.reg.Lookup(kv.key)
		if !ok {
			p.l.add(kv.k, "resources", "unknown resource kind %q (known kinds: %s)", kv.key, strings.Join(p.reg.Names(), ", "))
			continue
		}
		if isNull(kv.v) {
			continue
		}
		if kv.v.Kind != yaml.SequenceNode {
			p.l.add(kv.v, "resources."+kv.key, "want a list of resources, got %s", describe(kv.v))
			continue
		}
		for i, item := range kv.v.Content {
			p.resource(kind, resolve(item), i)
		}
	}
}

// resource parses, decodes and validates one resource. An exported one
// is recorded as an export instead of joining the graph.
func (p *parser) resource(kind engine.Kind, item *yaml.Node, idx int) {
	where := "resources." + kind.Name + "[" + strconv.Itoa(idx) + "]"
	if item.Kind != yaml.MappingNode {
		p.l.add(item, where, "want a mapping of parameters, got %s", describe(item))
		return
	}
	kvs := p.pairs(item, where)
	name, nameNode, ok := p.resourceName(kind, item, kvs, where)
	if !ok {
		return
	}
	where = kind.Name + " " + strconv.Quote(name)
	resName, marked := strings.CutPrefix(name, "@@")
	if marked && resName == "" {
		p.l.add(nameNode, where, "name is empty after the @@ that exports it")
		return
	}
	v, x, ok := p.decodeResource(kind, resName, item, kvs, where)
	if !ok {
		return
	}
	id := engine.ID{Kind: kind.Name, Name: name}
	if marked || x.exported() {
		p.addExport(kind.Name, resName, kvs, x, nameNode, where)
		p.exported[id] = nameNode
		return
	}
	if first, dup := p.defined[id]; dup {
		p.l.add(nameNode, where, "duplicate resource (first defined at line %d)", first.Line)
		return
	}
	p.defined[id] = nameNode
	if err := p.graph.AddVertex(v); err != nil {
		p.l.add(nameNode, where, "%v", err)
	}
}

// decodeResource decodes and validates the parameters and metaparameters
// kvs of a resource of kind called name (its name key is skipped). The
// export metaparameter, which is no engine metaparameter, is returned
// apart.
func (p *parser) decodeResource(kind engine.Kind, name string, item *yaml.Node, kvs []pair, where string) (engine.Vertex, exportMeta, bool) {
	res := kind.New(name)
	allowed := p.paramKeys(res)
	var legacy map[string]string
	if lk, ok := res.(legacyKeyer); ok {
		legacy = lk.LegacyKeys()
	}
	params := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	keyAt := map[string]*yaml.Node{}
	var meta engine.Meta
	var x exportMeta
	bad := false
	for _, kv := range kvs {
		switch {
		case kv.key == "name":
		case kv.key == "meta":
			var m engine.Meta
			var ok bool
			m, x, ok = p.metaAndExport(kv.v, where)
			meta, bad = m, bad || !ok
		case contains(allowed, kv.key):
			params.Content = append(params.Content, kv.k, kv.v)
			keyAt[kv.key] = kv.k
		case legacy[kv.key] != "":
			p.l.warn(kv.k, "%s: %s: ignored: %s", where, kv.key, legacy[kv.key])
		default:
			p.unknownKey(kv.k, where, kv.key, allowed)
			bad = true
		}
	}
	if !p.decode(params, res, where) || bad {
		return engine.Vertex{}, x, false
	}
	if err := res.Validate(); err != nil {
		p.validateError(err, item, keyAt, where)
		return engine.Vertex{}, x, false
	}
	p.warnIgnored(res, keyAt, where)
	return engine.Vertex{ID: engine.ID{Kind: kind.Name, Name: name}, Res: res, Meta: meta}, x, true
}

// resourceName returns a resource's name and its node, reporting a missing
// or empty name.
func (p *parser) resourceName(kind engine.Kind, item *yaml.Node, kvs []pair, where string) (string, *yaml.Node, bool) {
	var nameNode *yaml.Node
	for _, kv := range kvs {
		if kv.key == "name" {
			nameNode = kv.v
		}
	}
	if nameNode == nil {
		p.l.add(item, where, "missing name")
		return "", nil, false
	}
	name, ok := p.scalar(nameNode, where+".name")
	if !ok {
		return "", nil, false
	}
	if name == "" {
		p.l.add(nameNode, where, "name is empty")
		return "", nil, false
	}
	p.named[engine.ID{Kind: kind.Name, Name: name}] = true
	return name, nameNode, true
}

// warnIgnored warns at each parameter the resource says it ignores, in the
// order the file gives them. Keys the file does not set are not mentioned.
func (p *parser) warnIgnored(res engine.Res, keyAt map[string]*yaml.Node, where string) {
	pi, ok := res.(paramIgnorer)
	if !ok {
		return
	}
	ignored := pi.IgnoredParams()
	keys := make([]*yaml.Node, 0, len(ignored))
	for key := range ignored {
		if k := keyAt[key]; k != nil {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b *yaml.Node) int { return cmp.Or(a.Line-b.Line, a.Column-b.Column) })
	for _, k := range keys {
		p.l.warn(k, "%s: %s: ignored: %s", where, k.Value, ignored[k.Value])
	}
}

// edges parses the list of edges.
func (p *parser) edges(n *yaml.Node) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.l.add(n, "edges", "want a list of edges, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		item = resolve(item)
		where := "edges[" + strconv.Itoa(i) + "]"
		if item.Kind != yaml.MappingNode {
			p.l.add(item, where, "want a mapping with from and to, got %s", describe(item))
			continue
		}
		var from, to *endpoint
		var notify bool
		ok := true
		kvs := p.pairs(item, where)
		for _, kv := range kvs {
			if kv.key == "name" {
				if s, good := p.scalar(kv.v, where+".name"); good && s != "" {
					where = fmt.Sprintf("edge %q", s)
				}
			}
		}
		for _, kv := range kvs {
			switch kv.key {
			case "name":
			case "from":
				from = p.endpoint(kv.v, where+": from")
			case "to":
				to = p.endpoint(kv.v, where+": to")
			case "notify":
				if err := kv.v.Decode(&notify); err != nil {
					p.l.add(kv.v, where, "notify: want true or false, got %q", kv.v.Value)
					ok = false
				}
			default:
				p.unknownKey(kv.k, where, kv.key, []string{"from", "name", "notify", "to"})
				ok = false
			}
		}
		if from == nil || to == nil {
			if ok && !hasKey(kvs, "from") {
				p.l.add(item, where, "missing from")
			}
			if ok && !hasKey(kvs, "to") {
				p.l.add(item, where, "missing to")
			}
			continue
		}
		if !ok {
			continue
		}
		e := engine.Edge{From: from.id, To: to.id, Notify: notify}
		switch {
		case from.key != "" && to.key != "":
			e.Keys = []engine.KeyMap{{Send: from.key, Recv: to.key}}
		case from.key != "" || to.key != "":
			p.l.add(item, where, "send/recv needs a key on both from and to")
			continue
		}
		if _, seen := p.edgeAt[[2]engine.ID{e.From, e.To}]; !seen {
			p.edgeAt[[2]engine.ID{e.From, e.To}] = item
			p.edgeName[[2]engine.ID{e.From, e.To}] = where
		}
		if err := p.graph.AddEdge(e); err != nil {
			p.l.add(item, where, "%v", err)
		}
	}
}

// endpoint is one end of an edge: a resource, and for send/recv a key.
type endpoint struct {
	id  engine.ID
	key string
}

// endpoint parses {kind, name[, key]} and checks the resource exists.
func (p *parser) endpoint(n *yaml.Node, where string) *endpoint {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.l.add(n, where, "want a mapping with kind and name, got %s", describe(n))
		return nil
	}
	var id engine.ID
	var key string
	for _, kv := range p.pairs(n, where) {
		switch kv.key {
		case "kind":
			s, _ := p.scalar(kv.v, where+".kind")
			id.Kind = strings.ToLower(s)
		case "name":
			id.Name, _ = p.scalar(kv.v, where+".name")
		case "key":
			key, _ = p.scalar(kv.v, where+".key")
		default:
			p.unknownKey(kv.k, where, kv.key, []string{"key", "kind", "name"})
			return nil
		}
	}
	if id.Kind == "" || id.Name == "" {
		p.l.add(n, where, "want both kind and name")
		return nil
	}
	if _, ok := p.exported[id]; ok {
		p.l.add(n, where, "%s %q is exported: it does not run on this host, so no edge can reach it", id.Kind, id.Name)
		return nil
	}
	if _, ok := p.defined[id]; !ok {
		if !p.named[id] { // a resource that is named but refused has its error already
			p.l.add(n, where, "no resource %s %q in this graph", id.Kind, id.Name)
		}
		return nil
	}
	return &endpoint{id: id, key: key}
}

// graphError locates the problems Graph.Validate reports: a vertex's at its
// name, an edge's at the edge.
func (p *parser) graphError(err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []error
	for _, e := range errs {
		located := &Error{File: p.l.file, Msg: e.Error(), Err: e}
		var ve *engine.VertexError
		var ee *engine.EdgeError
		var ce *engine.ConflictError
		switch {
		case errors.As(e, &ce):
			if n := p.defined[ce.Second]; n != nil {
				located.Line, located.Column = n.Line, n.Column
			}
			located.Where = fmt.Sprintf("%s %q", ce.Second.Kind, ce.Second.Name)
			located.Msg = ce.Explain(p.describeAt(ce.First))
		case errors.As(e, &ve):
			if n := p.defined[ve.ID]; n != nil {
				located.Line, located.Column = n.Line, n.Column
			}
			located.Where, located.Msg = fmt.Sprintf("%s %q", ve.ID.Kind, ve.ID.Name), ve.Err.Error()
		case errors.As(e, &ee):
			if n := p.edgeAt[[2]engine.ID{ee.From, ee.To}]; n != nil {
				located.Line, located.Column = n.Line, n.Column
			}
			located.Where, located.Msg = fmt.Sprintf("edge %s -> %s", ee.From, ee.To), ee.Err.Error()
		}
		out = append(out, located)
	}
	return errors.Join(out...)
}

// describeAt names a resource and where the file defines it.
func (p *parser) describeAt(id engine.ID) string {
	s := fmt.Sprintf("%s %q", id.Kind, id.Name)
	if n := p.defined[id]; n != nil {
		s += fmt.Sprintf(" (%s:%d:%d)", p.l.file, n.Line, n.Column)
	}
	return s
}

// cycleError locates a cycle at the edges that form it.
func (p *parser) cycleError(c *engine.CycleError) error {
	var lines []string
	first := 0
	for i, from := range c.Cycle {
		to := c.Cycle[(i+1)%len(c.Cycle)]
		if n := p.edgeAt[[2]engine.ID{from, to}]; n != nil {
			lines = append(lines, fmt.Sprint(n.Line))
			if first == 0 {
				first = n.Line
			}
		}
	}
	return &Error{File: p.l.file, Line: first, Where: "edges",
		Msg: fmt.Sprintf("%v (edges at lines %s)", c, strings.Join(lines, ", "))}
}

// validateError reports what a resource's Validate returned: each
// engine.ParamError (several may come joined) at the key of its
// parameter, anything else at the resource.
func (p *parser) validateError(err error, item *yaml.Node, keyAt map[string]*yaml.Node, where string) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		at := item
		var pe *engine.ParamError
		if errors.As(e, &pe) && keyAt[pe.Param] != nil {
			at = keyAt[pe.Param]
		}
		p.l.addErr(at, where, e)
	}
}
