package msgpackcheck

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// What msgpack encodes passes, whatever the types in it.
func TestCheckPassesWhatMsgpackEncodes(t *testing.T) {
	type inner struct {
		S []string
		M map[string]int
	}
	for _, v := range []any{
		nil, true, 0, -1, -33, 200, 70000, uint64(math.MaxUint64), int64(math.MinInt64), float32(1.5), 2.5,
		"", "short", strings.Repeat("s", 40), strings.Repeat("s", 300), strings.Repeat("s", 70000),
		[]byte{}, []byte{1, 2}, bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{1}, 70000),
		[]int{}, make([]int, 20), make([]int, 70000), map[string]any{"a": 1, "b": []any{nil, "x"}},
		time.Unix(1, 5), time.Unix(1<<40, 0),
		inner{S: []string{"a", "b"}, M: map[string]int{"x": 1}},
		[]inner{{}, {S: []string{"deep"}}},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(b); err != nil {
			t.Errorf("%T %.40v encodes to %x...: %v", v, v, b[:min(len(b), 16)], err)
		}
	}
}

// Five bytes announcing two billion elements are refused before a
// decoder allocates for them.
func TestCheckRefusesArraysLongerThanTheirBytes(t *testing.T) {
	for name, b := range map[string][]byte{
		"array32":         {0xdd, 0x7f, 0xff, 0xff, 0xff},
		"array16":         {0xdc, 0xff, 0xff, 1, 2, 3},
		"map32":           {0xdf, 0, 0, 0, 2, 1, 2, 3},
		"fixarray in map": {0x81, 0xa1, 'h', 0x9f, 1},
		"str32":           {0xdb, 0, 0, 1, 0, 'x'},
		"bin16":           {0xc5, 0, 9, 1},
		"ext32":           {0xc9, 0, 0, 0, 5, 1, 2},
		"fixext16":        {0xd8, 1, 2},
		"uint64":          {0xcf, 1, 2},
		"empty":           {},
	} {
		if err := Check(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s %x: %v, want ErrMalformed", name, b, err)
		}
	}
}

func TestCheckRefusesNestingPastTheLimit(t *testing.T) {
	ok := append(bytes.Repeat([]byte{0x91}, MaxNesting), 0)
	if err := Check(ok); err != nil {
		t.Errorf("%d levels: %v", MaxNesting, err)
	}
	deep := append(bytes.Repeat([]byte{0x91}, MaxNesting+1), 0)
	if err := Check(deep); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("%d levels: %v, want refused for nesting", MaxNesting+1, err)
	}
}

func TestCheckRefusesBytesAfterTheValue(t *testing.T) {
	if err := Check([]byte{0x91, 1, 2}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "1 bytes after") {
		t.Errorf("a value and a byte: %v", err)
	}
	if err := Check([]byte{0xc1}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "0xc1") {
		t.Errorf("the unused code: %v", err)
	}
}
