package resources

import (
	"fmt"
	"strings"
)

// readPrettyName returns PRETTY_HOSTNAME from /etc/machine-info (the last
// assignment wins, as in a shell), or "" if the file or the key is missing.
func readPrettyName() (string, error) {
	b, err := readHostFile(machineInfoFile)
	if err != nil {
		return "", err
	}
	pretty := ""
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), prettyNameKey+"="); ok {
			pretty = unquoteEnvValue(v)
		}
	}
	return pretty, nil
}

// writePrettyName sets PRETTY_HOSTNAME in /etc/machine-info, keeping the
// file's other lines and its mode: the first assignment is replaced in
// place, later ones are dropped, and a file without one gets one at the end.
func writePrettyName(name string) error {
	b, err := readHostFile(machineInfoFile)
	if err != nil {
		return err
	}
	assign := prettyNameKey + "=" + quoteEnvValue(name) + "\n"
	var out strings.Builder
	done := false
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(strings.TrimSpace(line), prettyNameKey+"=") {
			out.WriteString(line)
			if !strings.HasSuffix(line, "\n") {
				out.WriteByte('\n')
			}
			continue
		}
		if !done {
			out.WriteString(assign)
			done = true
		}
	}
	if !done {
		out.WriteString(assign)
	}
	if err := writeHostFile(machineInfoFile, []byte(out.String())); err != nil {
		return fmt.Errorf("pretty name: %w", err)
	}
	return nil
}

// quoteEnvValue quotes s for an environment-style file such as
// /etc/machine-info: in double quotes, with \, ", $ and ` escaped.
func quoteEnvValue(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if strings.ContainsRune("\\\"$`", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// unquoteEnvValue reads a value of an environment-style file the way a
// shell would read a single word: double quotes with backslash escapes,
// single quotes taken literally, and bare text with backslash escapes.
func unquoteEnvValue(v string) string {
	var b strings.Builder
	var quote rune
	escaped := false
	for _, r := range v {
		switch {
		case escaped:
			b.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped = true
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote = r
		case quote == 0 && (r == ' ' || r == '\t'):
			return b.String() // an unquoted blank ends the word
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
