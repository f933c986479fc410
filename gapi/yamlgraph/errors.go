package yamlgraph

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a graph file, located by line and column (both
// 1-based; zero when unknown).
type Error struct {
	File   string
	Line   int
	Column int
	// Where names the part of the graph at fault, such as `file "f1"` or
	// `edge "e1"`. It may be empty.
	Where string
	Msg   string
	// Err is the error behind Msg, when there is one, for errors.Is and
	// errors.As: engine.ErrConflict for two resources managing one thing,
	// an *engine.ParamError for a parameter a resource refused.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is something a graph file says that graft accepts but ignores.
type Warning struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", w.File, w.Line, w.Column, w.Msg)
}

// maxErrors bounds how many problems one parse reports.
const maxErrors = 20

// errList collects the problems of one parse.
type errList struct {
	file  string
	errs  []error
	warns []Warning
}

func (l *errList) add(n *yaml.Node, where, format string, args ...any) {
	if len(l.errs) >= maxErrors {
		return
	}
	e := &Error{File: l.file, Where: where, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

// addErr adds err, kept for errors.Is and errors.As, located at n.
func (l *errList) addErr(n *yaml.Node, where string, err error) {
	if len(l.errs) >= maxErrors {
		return
	}
	e := &Error{File: l.file, Where: where, Msg: err.Error(), Err: err}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *errList) warn(n *yaml.Node, format string, args ...any) {
	w := Warning{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		w.Line, w.Column = n.Line, n.Column
	}
	l.warns = append(l.warns, w)
}

func (l *errList) err() error { return errors.Join(l.errs...) }

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// fromYAML turns an error of the yaml package ("yaml: line 3: ...", or a
// TypeError listing several) into located Errors.
func (l *errList) fromYAML(err error, where string) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		if len(l.errs) >= maxErrors {
			return
		}
		e := &Error{File: l.file, Where: where, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			e.Line, _ = strconv.Atoi(sub[1])
			e.Msg = sub[2]
		}
		l.errs = append(l.errs, e)
	}
}
