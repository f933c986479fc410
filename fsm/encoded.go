package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Encoded is a run of commands encoded once, in the form they take inside
// a log entry: a write is encoded where it is made, and the entries that
// carry it (a follower's forwarded batch, the leader's log entry, which
// may group several writes) are joined from the same bytes by JoinBatch.
// The zero Encoded holds no commands.
type Encoded struct {
	data  []byte // the commands' msgpack encodings, one after another
	n     int    // commands
	items int    // commands, nested commands, compares and exports
}

// Len returns the number of commands.
func (e Encoded) Len() int { return e.n }

// EncodeCommands encodes cmds, checking the limits of each command and of
// their number, with errors wrapping ErrTooLarge as EncodeBatch's do;
// whether they fit in one entry with others is JoinBatch's to check.
func EncodeCommands(cmds []Command) (Encoded, error) {
	if err := checkBatch(cmds); err != nil {
		return Encoded{}, fmt.Errorf("encode commands: %w", err)
	}
	var buf bytes.Buffer
	w := writer{e: msgpack.NewEncoder(&buf)} // not one from msgpack's pool: another user may have set its options
	for i := range cmds {
		w.command(&cmds[i])
	}
	if w.err != nil {
		return Encoded{}, fmt.Errorf("encode commands: %w", w.err)
	}
	return Encoded{data: buf.Bytes(), n: len(cmds), items: countItems(cmds)}, nil
}

// CheckJoin checks that parts, joined, fit in one log entry: nil, or an
// error wrapping ErrTooLarge naming the limit they break.
func CheckJoin(parts ...Encoded) error {
	_, _, err := joined(parts)
	return err
}

// joined returns the number of commands of parts and the size of the
// entry they make, or the limit of an entry they break.
func joined(parts []Encoded) (n, size int, err error) {
	items := 0
	for _, p := range parts {
		n, items, size = n+p.n, items+p.items, size+len(p.data)
	}
	size += 1 + arrayHeaderLen(n) // the format byte, the array header
	switch {
	case n > MaxBatch:
		return 0, 0, fmt.Errorf("join batch: %d commands, max %d: %w", n, MaxBatch, ErrTooLarge)
	case items > MaxEntryOps:
		return 0, 0, fmt.Errorf("join batch: %d commands, compares and exports, max %d: %w", items, MaxEntryOps, ErrTooLarge)
	case size > MaxEntrySize:
		return 0, 0, fmt.Errorf("join batch: entry is %d bytes, max %d: %w", size, MaxEntrySize, ErrTooLarge)
	}
	return n, size, nil
}

// arrayHeaderLen is the size of msgpack's header of an array of n.
func arrayHeaderLen(n int) int {
	switch {
	case n < 16:
		return 1 // fixarray
	case n < 1<<16:
		return 3 // array 16
	}
	return 5 // array 32
}

// JoinBatch makes one log entry of parts, in order, as EncodeBatch would
// make it of their commands. It fails as CheckJoin does if together they
// break the limits of an entry.
func JoinBatch(parts ...Encoded) ([]byte, error) {
	n, size, err := joined(parts)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	buf = append(buf, batchFormat)
	switch { // msgpack's array header (fixarray, array 16, array 32)
	case n < 16:
		buf = append(buf, 0x90|byte(n))
	case n < 1<<16:
		buf = binary.BigEndian.AppendUint16(append(buf, 0xdc), uint16(n))
	default:
		buf = binary.BigEndian.AppendUint32(append(buf, 0xdd), uint32(n))
	}
	for _, p := range parts {
		buf = append(buf, p.data...)
	}
	return buf, nil
}

// SplitBatch decodes an entry made by EncodeBatch or JoinBatch, as
// DecodeBatch does, and also returns the commands from the first on as
// they are encoded in it, to join into another entry without encoding
// them again.
func SplitBatch(data []byte, first int) ([]Command, Encoded, error) {
	cmds, err := DecodeBatch(data)
	if err != nil {
		return nil, Encoded{}, err
	}
	if first < 0 || first > len(cmds) {
		return nil, Encoded{}, fmt.Errorf("split batch: from command %d of %d", first, len(cmds))
	}
	// Skip the format byte, the array header and the commands before
	// first. A bytes.Reader is read as it is (it is a ByteScanner), not
	// through a buffer that reads ahead, so its Len is where d stopped.
	br := bytes.NewReader(data[1:])
	d := msgpack.NewDecoder(br)
	if _, err := d.DecodeArrayLen(); err != nil {
		return nil, Encoded{}, fmt.Errorf("split batch: %w", err)
	}
	for range first {
		if err := d.Skip(); err != nil {
			return nil, Encoded{}, fmt.Errorf("split batch: %w", err)
		}
	}
	rest := data[len(data)-br.Len():]
	return cmds, Encoded{data: rest, n: len(cmds) - first, items: countItems(cmds[first:])}, nil
}

// countItems counts what MaxEntryOps limits in cmds.
func countItems(cmds []Command) int {
	items := len(cmds)
	for i := range cmds {
		c := &cmds[i]
		items += len(c.Compares) + len(c.Then) + len(c.Else) + len(c.Exports)
	}
	return items
}
