package yamlgraph_test

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/gapi/yamlgraph"
)

// A value of the wrong type was reported as yaml.v3 words it ("line 5:
// cannot unmarshal !!seq into string"): no column, and Go's type names. It
// is reported at the value's line and column with the type the key wants.
func TestWrongTypeErrorKeepsColumnAndSaysTypeWanted(t *testing.T) {
	src := `resources:
  file:
  - name: a
    path: /tmp/a
    mode: [1]
  password:
  - name: p
    length: abc
  exec:
  - name: x
    cmd: "true"
    args: [a, [b]]
    env: {HOME: {x: 1}}
  noop:
  - name: n
    meta:
      noop: 3
      sema: {a: b}
`
	_, err := yamlgraph.Parse("types.yaml", []byte(src), registry())
	if err == nil {
		t.Fatal("parsed without an error")
	}
	want := []string{
		`types.yaml:5:11: file "a": mode: want a string, got a list`,
		`types.yaml:8:13: password "p": length: want a whole number from 0 to 65535, got the value "abc"`,
		`types.yaml:12:15: exec "x": args[1]: want a string, got a list`,
		`types.yaml:13:17: exec "x": env.HOME: want a string, got a mapping`,
		`types.yaml:17:13: noop "n": meta: noop: want true or false, got the value "3"`,
		`types.yaml:18:13: noop "n": meta: sema: want a list, each item a string, got a mapping`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.ReplaceAll(got, "\n", "\n  "), strings.Join(want, "\n  "))
	}
}
