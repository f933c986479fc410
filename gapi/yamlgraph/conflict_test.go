package yamlgraph_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// parseErr parses src as file name and returns its error, failing the test
// if there is none.
func parseErr(t *testing.T, name, src string) error {
	t.Helper()
	_, err := yamlgraph.Parse(name, []byte(src), registry())
	if err == nil {
		t.Fatalf("%s parsed without an error", name)
	}
	return err
}

// Two file resources on one path (a directory spelled "/srv/a/" and a file
// spelled "/srv/a") passed graft check and then rewrote each other for
// ever. They are refused at load, naming both and where they are.
func TestTwoFileResourcesOnOnePathAreRefused(t *testing.T) {
	src := `resources:
  file:
  - name: dir
    path: /srv/a/
    state: exists
  - name: other
    path: /srv/b
    content: x
  - name: file
    path: /srv/a
    content: x
`
	err := parseErr(t, "two.yaml", src)
	want := `two.yaml:9:11: file "file": manages path /srv/a, which file "dir" (two.yaml:3:11) manages too`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got\n  %v\nwant it to contain\n  %s", err, want)
	}
	if !errors.Is(err, engine.ErrConflict) {
		t.Errorf("error %v does not wrap engine.ErrConflict", err)
	}
	var ye *yamlgraph.Error
	if !errors.As(err, &ye) || ye.Line != 9 {
		t.Errorf("error %v is not a *yamlgraph.Error at line 9", err)
	}
}

// A file declared absent takes whatever is under it; a file managed under
// it would be recreated and removed on every run, so the pair is refused.
func TestFileUnderAbsentFileIsRefused(t *testing.T) {
	src := `resources:
  file:
  - name: conf
    path: /srv/app/conf
    content: x
  - name: app
    path: /srv/app/
    state: absent
`
	err := parseErr(t, "under.yaml", src)
	want := `under.yaml:6:11: file "app": manages path /srv/app with everything under it (it is declared absent), ` +
		`but file "conf" (under.yaml:3:11) manages path /srv/app/conf, under it`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got\n  %v\nwant it to contain\n  %s", err, want)
	}
}

// A file is declared a regular file unless its path ends in "/": nothing
// can be managed under it.
func TestFileUnderRegularFileIsRefused(t *testing.T) {
	src := `resources:
  file:
  - name: /srv/app
    content: x
  - name: /srv/app/conf
    content: y
`
	err := parseErr(t, "file.yaml", src)
	want := `file.yaml:5:11: file "/srv/app/conf": manages path /srv/app/conf, under path /srv/app, which file "/srv/app" ` +
		`(file.yaml:3:11) manages with everything under it (it is declared a regular file: its path does not end in /)`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got\n  %v\nwant it to contain\n  %s", err, want)
	}
}

// Files under a managed directory, and neighbours sharing a prefix, are fine.
func TestFilesUnderManagedDirectoryLoad(t *testing.T) {
	src := `resources:
  file:
  - name: /srv/app/
    mode: "0755"
  - name: /srv/app/conf
    content: x
  - name: /srv/application
    state: absent
`
	if _, err := yamlgraph.Parse("ok.yaml", []byte(src), registry()); err != nil {
		t.Fatal(err)
	}
}
