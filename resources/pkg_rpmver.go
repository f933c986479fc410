package resources

import (
	"strconv"
	"strings"
)

// rpmEVR is an RPM version: epoch (0 if none), version and release.
type rpmEVR struct {
	epoch            uint64
	version, release string
}

// parseEVR splits "[epoch:]version[-release]". An epoch that is not a
// number counts as 0, as rpm counts it.
func parseEVR(s string) rpmEVR {
	var evr rpmEVR
	if e, rest, ok := strings.Cut(s, ":"); ok {
		evr.epoch, _ = strconv.ParseUint(e, 10, 64)
		s = rest
	}
	evr.version, evr.release, _ = strings.Cut(s, "-")
	return evr
}

// String writes the version as graft states it and dnf takes it:
// "[epoch:]version-release", without the epoch when it is 0.
func (e rpmEVR) String() string {
	s := e.version + "-" + e.release
	if e.epoch != 0 {
		s = strconv.FormatUint(e.epoch, 10) + ":" + s
	}
	return s
}

// compareEVR orders two RPM versions as rpm does: by epoch, then version,
// then release, each part by rpmVerCmp. A missing release (a version
// state always has one) compares equal to any.
func compareEVR(a, b rpmEVR) int {
	switch {
	case a.epoch < b.epoch:
		return -1
	case a.epoch > b.epoch:
		return 1
	}
	if c := rpmVerCmp(a.version, b.version); c != 0 || a.release == "" || b.release == "" {
		return c
	}
	return rpmVerCmp(a.release, b.release)
}

func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }

func isASCIIAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// rpmVerCmp compares one version or release string the way rpm orders
// them: both are read as runs of digits and runs of letters, anything else
// only separates runs; runs are compared in turn, numbers by value and
// letters by bytes, and a number is newer than letters. '~' sorts before
// everything, even the end of the string (1.0~rc1 < 1.0); '^' sorts after
// the end of the string but before anything else (1.0 < 1.0^git1 < 1.0.1).
// When all runs are equal the string with more left is newer.
func rpmVerCmp(a, b string) int {
	if a == b {
		return 0
	}
	for len(a) > 0 || len(b) > 0 {
		a, b = skipSeparators(a), skipSeparators(b)
		c, found := compareMarker(a, b, '~')
		if !found {
			c, found = compareMarker(a, b, '^')
		}
		if found {
			if c != 0 {
				return c
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) == 0 || len(b) == 0 {
			break
		}
		numeric := isASCIIDigit(a[0])
		var ra, rb string
		ra, a = takeRun(a, numeric)
		rb, b = takeRun(b, numeric)
		if rb == "" { // b holds a run of the other kind here
			if numeric {
				return 1
			}
			return -1
		}
		if numeric {
			ra, rb = strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if len(ra) != len(rb) {
				return sign(len(ra) - len(rb))
			}
		}
		if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
	}
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return -1
	}
	return 1
}

// skipSeparators drops the leading characters that only separate runs.
func skipSeparators(s string) string {
	for len(s) > 0 && !isASCIIDigit(s[0]) && !isASCIIAlpha(s[0]) && s[0] != '~' && s[0] != '^' {
		s = s[1:]
	}
	return s
}

// compareMarker handles a '~' or '^' at the head of either string. found
// reports whether one of them starts with the marker; then c is their
// order, or 0 if both do (skip both markers and go on). '~' sorts before
// anything, the end of the string included; '^' after the end of the
// string but before anything else.
func compareMarker(a, b string, marker byte) (c int, found bool) {
	ha, hb := len(a) > 0 && a[0] == marker, len(b) > 0 && b[0] == marker
	switch {
	case !ha && !hb:
		return 0, false
	case ha && hb:
		return 0, true
	case marker == '~' && ha:
		return -1, true
	case marker == '~':
		return 1, true
	case len(a) == 0:
		return -1, true
	case len(b) == 0:
		return 1, true
	case ha:
		return -1, true
	}
	return 1, true
}

// takeRun splits the leading run of digits (numeric) or letters off s.
func takeRun(s string, numeric bool) (run, rest string) {
	i := 0
	for i < len(s) && (numeric && isASCIIDigit(s[i]) || !numeric && isASCIIAlpha(s[i])) {
		i++
	}
	return s[:i], s[i:]
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
