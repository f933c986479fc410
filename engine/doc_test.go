package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The metaparameter table in doc.go names functions as file:function (or
// file:Type.Method) and the tests that pin them; every name must exist in
// that file, or the table has drifted from the code.
func TestDocMetaparamTableNamesRealFunctionsAndTests(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "# Where each metaparameter lives")
	if !ok {
		t.Fatal("doc.go has no metaparameter table")
	}
	funcs := map[string]map[string]bool{} // file -> functions and Type.Methods
	tests := map[string]bool{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		funcs[file] = map[string]bool{}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil {
				typ := fd.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					funcs[file][id.Name+"."+name] = true
					funcs[file][name] = true // scheduler methods are named without their type
				}
			} else {
				funcs[file][name] = true
			}
			if strings.HasSuffix(file, "_test.go") && strings.HasPrefix(name, "Test") {
				tests[name] = true
			}
		}
	}
	refs := regexp.MustCompile(`(\w+\.go):([\w.]+)`).FindAllStringSubmatch(table, -1)
	named := regexp.MustCompile(`\bTest\w+`).FindAllString(table, -1)
	if len(refs) < 10 || len(named) < 10 {
		t.Fatalf("found %d file:function references and %d tests in the table; the pattern no longer matches it", len(refs), len(named))
	}
	for _, r := range refs {
		if !funcs[r[1]][r[2]] {
			t.Errorf("doc.go names %s:%s, which does not exist", r[1], r[2])
		}
	}
	for _, name := range named {
		if !tests[name] {
			t.Errorf("doc.go names test %s, which does not exist", name)
		}
	}
}
