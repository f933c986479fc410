package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// moduleRoot is graft's source tree, from cmd/graft.
const moduleRoot = "../.."

// sourceStrings returns every string constant of graft's code (tests
// left out): each literal, and each concatenation of literals with +, as
// written and without its format verbs, joined by NUL bytes.
func sourceStrings(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fset := token.NewFileSet()
	err := filepath.WalkDir(moduleRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != moduleRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if e, ok := n.(ast.Expr); ok {
				if s, ok := stringConstant(e); ok {
					// With its format verbs too, as the parts between
					// them are quoted with the values in between left out.
					b.WriteString(s + "\x00" + formatVerb.ReplaceAllString(s, "") + "\x00")
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// stringConstant is the value of e if it is a string literal or a sum of
// them.
func stringConstant(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok1 := stringConstant(e.X)
		y, ok2 := stringConstant(e.Y)
		return x + y, ok1 && ok2
	case *ast.ParenExpr:
		return stringConstant(e.X)
	}
	return "", false
}

// formatVerb matches a verb of a fmt format string.
var formatVerb = regexp.MustCompile(`%[-+# 0-9.*]*[a-zA-Z]`)

// placeholder is a part of a quoted message that varies: <a path>, or
// "<a name>" for a value graft prints quoted (%q).
var placeholder = regexp.MustCompile(`"?<[^>]*>"?`)

// messagePieces splits a message as the docs quote it into the pieces
// that must be in graft's source: the text between placeholders and
// between the ": " that join a wrapped error to its cause, without the
// "graft: " every error line starts with.
func messagePieces(msg string) []string {
	msg = strings.TrimPrefix(strings.TrimSpace(msg), "graft: ")
	var pieces []string
	for _, part := range placeholder.Split(msg, -1) {
		for _, p := range strings.Split(part, ": ") {
			if p = strings.TrimSpace(p); len(p) >= 4 {
				pieces = append(pieces, p)
			}
		}
	}
	return pieces
}

// inSource reports whether piece is in src, whole or in two parts split
// at a space: an error wrapped in a format ("%w at %s") prints its
// sentinel's text and the format's next to each other.
func inSource(src, piece string) bool {
	if strings.Contains(src, piece) {
		return true
	}
	for i, c := range piece {
		if c == ' ' && strings.Contains(src, piece[:i]) && strings.Contains(src, piece[i+1:]) {
			return true
		}
	}
	return false
}

// Every message the docs quote (a text block marked message: one message
// a line, the parts that vary written <like this>) is still one graft
// prints: each of its fixed parts is in a string constant of the source.
func TestDocsQuoteMessagesGraftPrints(t *testing.T) {
	src := sourceStrings(t)
	quoted := 0
	for _, b := range docBlocks(t) {
		if b.marker != "message" {
			continue
		}
		for i, line := range strings.Split(strings.TrimSpace(b.body), "\n") {
			quoted++
			for _, p := range messagePieces(line) {
				if !inSource(src, p) {
					t.Errorf("%s, message %d: %q is in no string of graft's source: the message changed; quote it as graft prints it now", b, i+1, p)
				}
			}
		}
	}
	if quoted < 10 {
		t.Errorf("the docs quote %d messages: the troubleshooting page lost them, or the parser its way", quoted)
	}
}
