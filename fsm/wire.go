package fsm

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// writer encodes msgpack values, keeping the first error.
type writer struct {
	e   *msgpack.Encoder
	err error
}

func (w *writer) keep(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) arrayLen(n int) { w.keep(w.e.EncodeArrayLen(n)) }
func (w *writer) mapLen(n int)   { w.keep(w.e.EncodeMapLen(n)) }
func (w *writer) str(s string)   { w.keep(w.e.EncodeString(s)) }
func (w *writer) bytes(b []byte) { w.keep(w.e.EncodeBytes(b)) }
func (w *writer) uint(v uint64)  { w.keep(w.e.EncodeUint(v)) }
func (w *writer) int(v int64)    { w.keep(w.e.EncodeInt(v)) }
func (w *writer) bool(v bool)    { w.keep(w.e.EncodeBool(v)) }

// reader decodes untrusted msgpack values, keeping the first error. It
// checks every length before allocating for it.
type reader struct {
	d *msgpack.Decoder
	// left, if set, reports how many bytes are left to read: no array
	// is preallocated beyond it, as every element takes a byte at least.
	left func() int
	// items, if left is set, is how many more array elements the input
	// may hold, all arrays together.
	items int
	err   error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) failf(format string, args ...any) { r.fail(fmt.Errorf(format, args...)) }

// length reads a string or binary header of at most limit bytes.
func (r *reader) length(what string, limit int) int {
	if r.err != nil {
		return 0
	}
	n, err := r.d.DecodeBytesLen()
	switch {
	case err != nil:
		r.failf("%s: %w", what, err)
		return 0
	case n > limit:
		r.failf("%s is %d bytes, max %d: %w", what, n, limit, ErrTooLarge)
		return 0
	}
	return max(n, 0)
}

func (r *reader) raw(what string, limit int) []byte {
	n := r.length(what, limit)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	if err := r.d.ReadFull(b); err != nil {
		r.failf("%s: %w", what, err)
		return nil
	}
	return b
}

func (r *reader) str(what string, limit int) string   { return string(r.raw(what, limit)) }
func (r *reader) bytes(what string, limit int) []byte { return r.raw(what, limit) }

func (r *reader) uint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.DecodeUint64()
	if err != nil {
		r.failf("%s: %w", what, err)
	}
	return v
}

func (r *reader) int(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.DecodeInt64()
	if err != nil {
		r.failf("%s: %w", what, err)
	}
	return v
}

func (r *reader) bool(what string) bool {
	if r.err != nil {
		return false
	}
	v, err := r.d.DecodeBool()
	if err != nil {
		r.failf("%s: %w", what, err)
	}
	return v
}

// arrayLen reads an array header of at most limit elements (nil: -1).
func (r *reader) arrayLen(what string, limit int) int {
	if r.err != nil {
		return 0
	}
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		r.failf("%s: %w", what, err)
		return 0
	}
	if n > limit {
		r.failf("%s has %d elements, max %d: %w", what, n, limit, ErrTooLarge)
		return 0
	}
	if r.left != nil && n > 0 {
		if r.items -= n; r.items < 0 {
			r.failf("%s: more than %d elements in the entry: %w", what, MaxEntryOps, ErrTooLarge)
			return 0
		}
	}
	return n
}

// mapLen reads a map header of at most limit entries (nil: -1).
func (r *reader) mapLen(what string, limit int) int {
	if r.err != nil {
		return 0
	}
	n, err := r.d.DecodeMapLen()
	if err != nil {
		r.failf("%s: %w", what, err)
		return 0
	}
	if n > limit {
		r.failf("%s has %d fields, max %d: %w", what, n, limit, ErrTooLarge)
		return 0
	}
	return n
}

// readArray reads an array of at most limit elements, each read by elem
// with its index. A nil array reads as a nil slice.
func readArray[T any](r *reader, what string, limit int, elem func(i int) T) []T {
	n := r.arrayLen(what, limit)
	if n < 0 || r.err != nil {
		return nil
	}
	out := make([]T, 0, r.capacity(n))
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, elem(i))
	}
	return out
}

// maxFields bounds the fields of an encoded struct and the length of their
// names, so that a map header cannot make the reader loop for long.
const maxFields = 16

// fields reads a map of at most maxFields fields, calling field with each
// field's name; field reads the value.
func (r *reader) fields(what string, field func(name string)) {
	n := r.mapLen(what, maxFields)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.str("field name", maxFields)
		if r.err != nil {
			return
		}
		field(name)
	}
}

// capacity is how many elements to preallocate for an array of n.
func (r *reader) capacity(n int) int {
	if r.left != nil {
		return min(n, r.left())
	}
	return min(n, 1024)
}
