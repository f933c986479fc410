package resources

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/graftcm/graft/engine"
)

// modeSpec is a parsed file mode: either an absolute octal mode or a list of
// symbolic clauses applied to the current mode.
type modeSpec struct {
	set     bool
	octal   bool
	abs     fs.FileMode
	clauses []modeClause
}

// modeClause is one symbolic clause such as "u=rw" or "go-w".
type modeClause struct {
	who  uint32 // bits of 0o7777 the clause may touch
	op   byte   // '=', '+' or '-'
	bits uint32 // permission bits, already spread over who
}

// parseMode parses an octal mode ("0644", "644", "1777") or symbolic clauses
// separated by commas ("u=rw,go=r", "a+x", "o-rwx"), the forms chmod(1) takes
// apart from X and references to other classes. The empty string means "do
// not manage the mode".
func parseMode(s string) (modeSpec, error) {
	if s == "" {
		return modeSpec{}, nil
	}
	if s[0] >= '0' && s[0] <= '7' {
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil || v > 0o7777 {
			return modeSpec{}, engine.ParamErrorf("mode", "%q: want an octal mode up to 7777 or symbolic clauses like u=rw,go=r", s)
		}
		return modeSpec{set: true, octal: true, abs: unixToFileMode(uint32(v))}, nil
	}
	spec := modeSpec{set: true}
	for clause := range strings.SplitSeq(s, ",") {
		c, err := parseClause(clause)
		if err != nil {
			return modeSpec{}, engine.ParamErrorf("mode", "%q: %w", s, err)
		}
		spec.clauses = append(spec.clauses, c)
	}
	return spec, nil
}

func parseClause(s string) (modeClause, error) {
	i := strings.IndexAny(s, "=+-")
	if i < 0 {
		return modeClause{}, fmt.Errorf("clause %q has no =, + or -", s)
	}
	var who uint32
	for _, r := range s[:i] {
		switch r {
		case 'u':
			who |= 0o4700
		case 'g':
			who |= 0o2070
		case 'o':
			who |= 0o1007
		case 'a':
			who |= 0o7777
		default:
			return modeClause{}, fmt.Errorf("clause %q: unknown class %q (want u, g, o or a)", s, r)
		}
	}
	if who == 0 {
		who = 0o7777
	}
	var perm uint32
	for _, r := range s[i+1:] {
		switch r {
		case 'r':
			perm |= 0o444
		case 'w':
			perm |= 0o222
		case 'x':
			perm |= 0o111
		case 's':
			perm |= 0o6000
		case 't':
			perm |= 0o1000
		default:
			return modeClause{}, fmt.Errorf("clause %q: unknown permission %q (want r, w, x, s or t)", s, r)
		}
	}
	return modeClause{who: who, op: s[i], bits: perm & who}, nil
}

// apply returns the mode the spec asks for, given the current one.
func (m modeSpec) apply(cur fs.FileMode) fs.FileMode {
	if m.octal {
		return m.abs
	}
	bits := fileModeToUnix(cur)
	for _, c := range m.clauses {
		switch c.op {
		case '=':
			bits = bits&^c.who | c.bits
		case '+':
			bits |= c.bits
		case '-':
			bits &^= c.bits
		}
	}
	return unixToFileMode(bits)
}

// unixToFileMode converts chmod(2) bits to an fs.FileMode.
func unixToFileMode(v uint32) fs.FileMode {
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// fileModeToUnix converts the permission part of an fs.FileMode to chmod(2)
// bits.
func fileModeToUnix(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// permBits keeps the parts of a mode chmod can set.
func permBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}
