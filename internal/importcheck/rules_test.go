package main

import (
	"slices"
	"strings"
	"testing"
)

// p is a package of graft's module with the given direct imports.
func p(name string, imports ...string) pkg {
	q := pkg{ImportPath: module + "/" + name}
	for _, i := range imports {
		if !strings.Contains(i, ".") && !strings.HasPrefix(i, "net") {
			i = module + "/" + i
		}
		q.Imports = append(q.Imports, i)
	}
	return q
}

// The tree as it is obeys the rules: the lint would fail otherwise, but
// the test says which import.
func TestTheTreeObeysTheImportRules(t *testing.T) {
	pkgs, err := list()
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	if bad := check(pkgs, rules()); len(bad) > 0 {
		t.Errorf("import rules broken:\n%s", strings.Join(bad, "\n"))
	}
}

// A deliberately wrong import is caught and named: the engine importing
// the World, the state machine importing the network, the API client
// linking raft through another package.
func TestWrongImportsAreNamed(t *testing.T) {
	client := p("api", "fsm")
	client.Deps = []string{"github.com/hashicorp/raft", "fmt"}
	fsmNet := p("fsm")
	fsmNet.Deps = []string{"net/http"}
	pkgs := []pkg{p("engine", "world", "internal/atomicfile"), fsmNet, client, p("newpkg"), p("cmd/graft", "world", "engine")}
	bad := check(pkgs, rules())
	for _, want := range []string{
		"engine imports world, which it may not (it may import: internal/atomicfile, internal/fswatch, internal/msgpackcheck)",
		"fsm depends on net/http",
		"api imports fsm, which it may not",
		"api depends on github.com/hashicorp/raft",
		"newpkg: no import rule",
	} {
		if !slices.ContainsFunc(bad, func(b string) bool { return strings.Contains(b, want) }) {
			t.Errorf("no complaint %q in:\n%s", want, strings.Join(bad, "\n"))
		}
	}
	if len(bad) != 5 {
		t.Errorf("%d complaints, want 5 (cmd/graft may import anything of ours):\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// Tests may import the parts they run against (listed per package) and
// test-support packages of what the package may import, and nothing else.
func TestTestImportsHaveTheirOwnAllowance(t *testing.T) {
	r := rules()
	eng := p("engine")
	eng.XTestImports = []string{module + "/world/worldtest", module + "/cluster"}
	res := p("resources")
	res.TestImports = []string{module + "/api"}
	bad := check([]pkg{eng, res}, r)
	if len(bad) != 1 || !strings.Contains(bad[0], "resources (tests) imports api") {
		t.Errorf("complaints %q, want only the resources tests' import of api", bad)
	}
}
