package resources

import (
	"io/fs"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		spec string
		cur  uint32
		want uint32
	}{
		{"0644", 0o777, 0o644},
		{"644", 0o000, 0o644},
		{"1777", 0o755, 0o1777},
		{"4755", 0o644, 0o4755},
		{"u=rw,go=r", 0o777, 0o644},
		{"a+x", 0o644, 0o755},
		{"go-w", 0o777, 0o755},
		{"o=", 0o777, 0o770},
		{"=r", 0o777, 0o444},
		{"u+s", 0o755, 0o4755},
		{"g+s", 0o755, 0o2755},
		{"+t", 0o777, 0o1777},
		{"u=rwx,g=,o=", 0o4755, 0o700},
	} {
		m, err := parseMode(tc.spec)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if got := fileModeToUnix(m.apply(unixToFileMode(tc.cur))); got != tc.want {
			t.Errorf("%q on %04o: got %04o, want %04o", tc.spec, tc.cur, got, tc.want)
		}
	}
	for _, bad := range []string{"0888", "17777", "9", "u", "u=rwq", "z=r", "u=r,,g=r"} {
		if _, err := parseMode(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	if m, err := parseMode(""); err != nil || m.set {
		t.Errorf("empty mode: got %+v, %v; want unset", m, err)
	}
	if got := permBits(fs.ModeDir | 0o755 | fs.ModeSticky); got != 0o755|fs.ModeSticky {
		t.Errorf("permBits: got %v", got)
	}
}
