package yamlgraph_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// ignorer is a small kind that, like mgmt's file, accepts content and mode
// with state absent and ignores them.
type ignorer struct {
	State   string `yaml:"state"`
	Content string `yaml:"content"`
	Mode    string `yaml:"mode"`
	Owner   string `yaml:"owner"`
}

func (r *ignorer) Validate() error {
	if r.State != "" && r.State != "absent" {
		return errors.New("state: want absent or nothing")
	}
	return nil
}
func (r *ignorer) Init(*engine.Runtime) error                     { return nil }
func (r *ignorer) Watch(context.Context) error                    { return nil }
func (r *ignorer) CheckApply(context.Context, bool) (bool, error) { return true, nil }
func (r *ignorer) Cleanup() error                                 { return nil }

// IgnoredParams names owner even when it is unset: the frontend only warns
// about keys the file sets.
func (r *ignorer) IgnoredParams() map[string]string {
	if r.State != "absent" {
		return nil
	}
	why := "state is absent"
	return map[string]string{"content": why, "mode": why, "owner": why}
}

func ignorerRegistry(t *testing.T) *engine.Registry {
	t.Helper()
	reg := engine.NewRegistry()
	if err := reg.Add(engine.Kind{Name: "thing", New: func(string) engine.Res { return &ignorer{} }}); err != nil {
		t.Fatal(err)
	}
	return reg
}

// A parameter a resource accepts and ignores used to pass in silence; it is
// warned about at its own line and column.
func TestIgnoredParamIsWarnedAtItsKey(t *testing.T) {
	src := `resources:
  thing:
  - name: gone
    mode: "0644"
    state: absent
    content: x
  - name: kept
    content: y
    mode: "0600"
`
	res, err := yamlgraph.Parse("ign.yaml", []byte(src), ignorerRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`ign.yaml:4:5: thing "gone": mode: ignored: state is absent`,
		`ign.yaml:6:5: thing "gone": content: ignored: state is absent`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
