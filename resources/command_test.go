package resources

import (
	"testing"
)

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	b := newTailBuffer(4)
	for _, s := range []string{"ab", "cd", "e", "fghij", "k"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := string(b.Bytes()), "hijk"; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
	if got, want := b.Dropped(), int64(7); got != want {
		t.Errorf("Dropped = %d, want %d", got, want)
	}
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	type line struct {
		s   string
		cut bool
	}
	var got []line
	w := newLineWriter(4, func(l []byte, cut bool) { got = append(got, line{string(l), cut}) })
	for _, s := range []string{"ab\n", "c", "d\n\n", "toolong", "still\nx", "yz\nabcd\n", "tail"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	w.Flush()
	want := []line{{"ab", false}, {"cd", false}, {"", false}, {"tool", true}, {"xyz", false}, {"abcd", false}, {"tail", false}}
	if len(got) != len(want) {
		t.Fatalf("got lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
