// Package msgpackcheck checks untrusted msgpack before a decoder that
// trusts its lengths sees it.
package msgpackcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxNesting bounds how deep arrays and maps may nest: graft's messages
// nest three deep at most, and skipping an unknown field should not make
// the decoder recurse a million times.
const MaxNesting = 32

// ErrMalformed marks bytes that are not one well-formed msgpack value.
var ErrMalformed = errors.New("malformed msgpack")

// Check checks that b holds exactly one msgpack value whose arrays and
// maps nest at most MaxNesting deep and announce no more items than the
// bytes left could hold (every item takes one at least), before a decoder
// preallocates for them: vmihailenco/msgpack (v5.4.1) trusts an array's
// length when it decodes into a slice, so five bytes could otherwise make
// it allocate gigabytes. Check allocates nothing but its error.
func Check(b []byte) error {
	var stack [MaxNesting + 1]uint64 // items still to read at each open level
	depth := 0
	stack[0] = 1
	at := 0
	for {
		for depth > 0 && stack[depth] == 0 {
			depth--
		}
		if stack[depth] == 0 { // the value is complete
			if at != len(b) {
				return fmt.Errorf("%w: %d bytes after the value", ErrMalformed, len(b)-at)
			}
			return nil
		}
		if at >= len(b) {
			return fmt.Errorf("%w: ends in the middle of a value", ErrMalformed)
		}
		stack[depth]--
		skip, items, err := header(b[at:])
		if err != nil {
			return fmt.Errorf("%w at byte %d: %w", ErrMalformed, at, err)
		}
		if uint64(len(b)-at) < skip {
			return fmt.Errorf("%w: ends in the middle of a value", ErrMalformed)
		}
		at += int(skip)
		if items == 0 {
			continue
		}
		if items > uint64(len(b)-at) {
			return fmt.Errorf("%w at byte %d: %d items announced, %d bytes left", ErrMalformed, at, items, len(b)-at)
		}
		if depth == MaxNesting {
			return fmt.Errorf("%w at byte %d: nested deeper than %d", ErrMalformed, at, MaxNesting)
		}
		depth++
		stack[depth] = items
	}
}

// header reads the msgpack header at the start of b: how many bytes the
// header and any payload take, and how many items follow it (an array's
// elements, a map's keys and values).
func header(b []byte) (skip, items uint64, err error) {
	c := b[0]
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixints, nil, bools
		return 1, 0, nil
	case c <= 0x8f: // fixmap
		return 1, 2 * uint64(c&0x0f), nil
	case c <= 0x9f: // fixarray
		return 1, uint64(c & 0x0f), nil
	case c <= 0xbf: // fixstr
		return 1 + uint64(c&0x1f), 0, nil
	}
	// Sized types: the width of their length, or their fixed payload.
	var width int
	switch c {
	case 0xc4, 0xc7, 0xd9, 0xcc, 0xd0: // bin8, ext8, str8, uint8, int8
		width = 1
	case 0xc5, 0xc8, 0xda, 0xdc, 0xde, 0xcd, 0xd1: // 16-bit lengths, uint16, int16
		width = 2
	case 0xc6, 0xc9, 0xdb, 0xdd, 0xdf, 0xca, 0xce, 0xd2: // 32-bit lengths, float32, uint32, int32
		width = 4
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return 9, 0, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: a type byte and the data
		return 2 + 1<<(c-0xd4), 0, nil
	default: // 0xc1
		return 0, 0, fmt.Errorf("code 0x%02x is never used", c)
	}
	if len(b) < 1+width {
		return 1 + uint64(width), 0, nil // the caller finds it cut short
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(b[1])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	switch c {
	case 0xcc, 0xd0, 0xcd, 0xd1, 0xca, 0xce, 0xd2: // numbers: the payload was the "length"
		return 1 + uint64(width), 0, nil
	case 0xc7, 0xc8, 0xc9: // ext: a type byte, then n bytes
		return 1 + uint64(width) + 1 + n, 0, nil
	case 0xdc, 0xdd: // arrays
		return 1 + uint64(width), n, nil
	case 0xde, 0xdf: // maps
		return 1 + uint64(width), 2 * n, nil
	}
	return 1 + uint64(width) + n, 0, nil // bin, str
}
