package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// module is graft's module path; rules name packages relative to it.
const module = "github.com/graftcm/graft"

// rule is what one of graft's packages may import.
type rule struct {
	// may lists the graft packages it may import directly.
	may []string
	// tests lists the graft packages its tests may import besides those.
	tests []string
	// never lists import path prefixes that must not be among its
	// dependencies, direct or not (the API client links no raft, say).
	never []string
}

// helpers are the small packages anything may import.
var helpers = []string{"internal/atomicfile", "internal/fswatch", "internal/msgpackcheck"}

// network is the code the state machine must not depend on.
var network = []string{"net", "net/http", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist"}

// clusterDeps are the packages a client of the local API does without.
var clusterDeps = []string{"github.com/hashicorp/raft", "github.com/hashicorp/memberlist", "go.etcd.io/bbolt",
	"github.com/hashicorp/raft-boltdb"}

// rules encodes the arrows of DESIGN.md section 1: imports point
// downward only. Tests may reach further (they run against real parts: a
// real raft under the engine's cluster semaphores, real resources under
// the YAML loader), never the package's code. A package missing here is an error, so a new package
// gets its arrows written down when it is made.
func rules() map[string]rule {
	with := func(pkgs ...string) []string { return append(slices.Clone(helpers), pkgs...) }
	return map[string]rule{
		"internal/atomicfile":   {},
		"internal/fswatch":      {},
		"internal/systemdbus":   {tests: []string{"internal/systemdtest"}},
		"internal/systemdtest":  {may: []string{"internal/systemdbus"}},
		"internal/msgpackcheck": {},
		"internal/graphviz":     {may: with("api"), never: clusterDeps},
		"fsm":                   {may: []string{"internal/msgpackcheck"}, never: network},
		"engine": {may: with(),
			tests: []string{"cluster", "cluster/clustertest", "fsm", "world", "world/worldtest"}},
		"resources": {may: with("engine", "internal/systemdbus"),
			tests: []string{"fsm", "world", "world/worldtest", "gapi/yamlgraph", "internal/systemdtest"}},
		"world":                     {may: with("fsm"), tests: []string{"cluster/clustertest", "engine"}},
		"world/worldtest":           {may: with("world", "cluster/clustertest")},
		"cluster/clusterkey":        {},
		"cluster/internal/loglimit": {},
		"cluster/internal/logtest":  {},
		"cluster/transport": {may: with("fsm", "cluster/internal/loglimit"),
			tests: []string{"cluster/clusterkey", "cluster/internal/logtest"}},
		"cluster/internal/backoff": {},
		"cluster/raftnode": {may: with("fsm", "cluster/transport", "cluster/internal/loglimit", "cluster/internal/backoff"),
			tests: []string{"cluster/clusterkey", "cluster/clustertest", "cluster/internal/logtest"}, never: []string{"github.com/hashicorp/memberlist"}},
		"cluster": {may: with("fsm", "cluster/clusterkey", "cluster/transport", "cluster/raftnode",
			"cluster/internal/loglimit", "cluster/internal/backoff"),
			tests: []string{"cluster/internal/logtest"}},
		"cluster/clustertest": {may: with("cluster", "cluster/raftnode", "cluster/transport", "fsm")},
		"gapi": {may: with("engine", "fsm", "world"),
			tests: []string{"cluster", "cluster/clustertest", "resources", "gapi/yamlgraph"}},
		"gapi/yamlgraph":       {may: with("engine", "gapi"), tests: []string{"resources"}},
		"api":                  {may: with(), never: clusterDeps},
		"api/server":           {may: with("api", "cluster", "cluster/clusterkey", "cluster/raftnode", "fsm", "world")},
		"api/apitest":          {may: with("cluster")},
		"internal/importcheck": {},
		"internal/faultcheck":  {},                                                      // histories in, violations out: no graft package
		"discovery":            {never: clusterDeps},                                    // plain values and callbacks: no graft package
		"metrics":              {never: clusterDeps},                                    // plain values and callbacks in, Prometheus out: no graft package
		"bench":                {may: with("api", "bench/loadgen"), never: clusterDeps}, // the driver runs the real binaries: API client only
		"bench/loadgen":        {},                                                      // the load, shared with the etcd helper module: the standard library only
		"integration":          {tests: []string{"api", "internal/faultcheck"}},
		"faultsuite": {tests: []string{"cluster", "cluster/clustertest", "cluster/raftnode", "fsm", "world",
			"internal/faultcheck"}},
		"cmd/graft": {may: with("api", "api/server", "api/apitest", "cluster", "cluster/clusterkey", "cluster/raftnode",
			"cluster/clustertest", "engine", "fsm",
			"gapi", "resources", "world", "world/worldtest", "gapi/yamlgraph", "discovery", "metrics", "internal/graphviz"),
			tests: []string{"internal/systemdtest"}},
	}
}

// pkg is what `go list` says of one package: its path, its direct
// imports (tests' included) and all its dependencies.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// check returns one line per import that breaks the rules, sorted.
func check(pkgs []pkg, rules map[string]rule) []string {
	var bad []string
	for _, p := range pkgs {
		name, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok {
			continue
		}
		r, ok := rules[name]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: no import rule: add the package to internal/importcheck/rules.go with the graft packages it may import", name))
			continue
		}
		bad = append(bad, checkImports(name, p, r)...)
		for _, d := range p.Deps {
			for _, n := range r.never {
				if d == n || strings.HasPrefix(d, n+"/") {
					bad = append(bad, fmt.Sprintf("%s depends on %s, which it must not (directly or through another package)", name, d))
				}
			}
		}
	}
	sort.Strings(bad)
	return slices.Compact(bad)
}

// checkImports returns the imports of graft packages p makes that r does
// not allow. Tests may import what the package may, the package itself,
// and test-support packages of what it may import.
func checkImports(name string, p pkg, r rule) []string {
	var bad []string
	report := func(imps []string, what string) {
		for _, imp := range imps {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok || dep == name || slices.Contains(r.may, dep) {
				continue
			}
			if what != "" && allowedInTests(name, dep, r) {
				continue
			}
			bad = append(bad, fmt.Sprintf("%s%s imports %s, which it may not (it may import: %s)", name, what, dep, mayList(r)))
		}
	}
	report(p.Imports, "")
	report(p.TestImports, " (tests)")
	report(p.XTestImports, " (tests)")
	return bad
}

// allowedInTests reports whether the tests of package name may import
// dep: a package the rule lists for tests, or a test-support package
// (one whose name ends in "test") of the package itself or of one it may
// import.
func allowedInTests(name, dep string, r rule) bool {
	if slices.Contains(r.tests, dep) {
		return true
	}
	parent, base, _ := cutLast(dep)
	return strings.HasSuffix(base, "test") && (parent == name || slices.Contains(r.may, parent))
}

// cutLast splits a path at its last slash.
func cutLast(p string) (dir, base string, ok bool) {
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return "", p, false
	}
	return p[:i], p[i+1:], true
}

// mayList is r's allowed imports, for a message.
func mayList(r rule) string {
	if len(r.may) == 0 {
		return "no graft package"
	}
	return strings.Join(r.may, ", ")
}
