package fsm

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// batchFormat is the first byte of an encoded batch: the version of the
// format that follows. Version 1 is a msgpack array of commands, each a map
// keyed by the msgpack tags of Command, Compare and Export, zero fields
// left out.
const batchFormat byte = 1

// ErrTooLarge is wrapped by every error about a broken size or count limit.
var ErrTooLarge = errors.New("limit exceeded")

// EncodeBatch encodes cmds as one log entry. It rejects a batch that breaks
// the limits (see MaxBatch and the other Max constants) with an error
// wrapping ErrTooLarge, naming the command and the field; commands that are
// otherwise invalid are encoded and fail when applied, with Result.Err.
func EncodeBatch(cmds []Command) ([]byte, error) {
	if err := checkBatch(cmds); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteByte(batchFormat)
	w := writer{e: msgpack.NewEncoder(&buf)}
	w.arrayLen(len(cmds))
	for i := range cmds {
		w.command(&cmds[i])
	}
	if w.err != nil {
		return nil, fmt.Errorf("encode batch: %w", w.err)
	}
	if buf.Len() > MaxEntrySize {
		return nil, fmt.Errorf("encode batch: entry is %d bytes, max %d: %w", buf.Len(), MaxEntrySize, ErrTooLarge)
	}
	return buf.Bytes(), nil
}

// DecodeBatch decodes a log entry made by EncodeBatch. The entry is
// untrusted: DecodeBatch checks every limit before it allocates for it and
// never panics. Unknown fields are errors, so that a replica never silently
// ignores part of a command that another one understood.
func DecodeBatch(data []byte) ([]Command, error) {
	cmds, err := decodeBatch(data)
	if err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	return cmds, nil
}

func decodeBatch(data []byte) ([]Command, error) {
	if len(data) == 0 {
		return nil, errors.New("empty entry")
	}
	if len(data) > MaxEntrySize {
		return nil, fmt.Errorf("entry is %d bytes, max %d: %w", len(data), MaxEntrySize, ErrTooLarge)
	}
	if data[0] != batchFormat {
		return nil, fmt.Errorf("unknown format %d", data[0])
	}
	br := bytes.NewReader(data[1:])
	r := reader{d: msgpack.NewDecoder(br), left: br.Len, items: MaxEntryOps}
	cmds := r.commands("batch", "command", MaxBatch, false)
	if r.err != nil {
		return nil, r.err
	}
	if br.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", br.Len())
	}
	if cmds == nil {
		return nil, errors.New("batch is nil")
	}
	if err := checkBatch(cmds); err != nil {
		return nil, err
	}
	return cmds, nil
}

// checkBatch checks the limits of a batch.
func checkBatch(cmds []Command) error {
	if len(cmds) > MaxBatch {
		return fmt.Errorf("%d commands, max %d: %w", len(cmds), MaxBatch, ErrTooLarge)
	}
	for i := range cmds {
		if err := checkCommand(&cmds[i], false); err != nil {
			return fmt.Errorf("command %d: %w", i, err)
		}
	}
	if items := countItems(cmds); items > MaxEntryOps {
		return fmt.Errorf("%d commands, compares and exports, max %d: %w", items, MaxEntryOps, ErrTooLarge)
	}
	return nil
}

// checkCommand checks the limits of one command; nested is true for the
// commands in a transaction's branches.
func checkCommand(c *Command, nested bool) error {
	if nested && (c.Op == OpTxn || len(c.Compares) > 0 || len(c.Then) > 0 || len(c.Else) > 0) {
		return errors.New("transactions do not nest")
	}
	if err := checkSize("key", len(c.Key), MaxKeySize); err != nil {
		return err
	}
	if err := checkSize("value", len(c.Value), MaxValueSize); err != nil {
		return err
	}
	for _, f := range [...]struct {
		what string
		s    string
	}{{"node", c.Node}, {"sema", c.Sema}, {"holder", c.Holder}, {"request", c.Request}} {
		if err := checkSize(f.what, len(f.s), MaxNameSize); err != nil {
			return err
		}
	}
	if c.Count > MaxSemaCount {
		return fmt.Errorf("count is %d, max %d: %w", c.Count, MaxSemaCount, ErrTooLarge)
	}
	if n := len(c.Compares) + len(c.Then) + len(c.Else); n > MaxTxnOps {
		return fmt.Errorf("%d compares and operations, max %d: %w", n, MaxTxnOps, ErrTooLarge)
	}
	for i := range c.Compares {
		if err := checkSize("key", len(c.Compares[i].Key), MaxKeySize); err != nil {
			return fmt.Errorf("compare %d: %w", i, err)
		}
		if err := checkSize("value", len(c.Compares[i].Value), MaxValueSize); err != nil {
			return fmt.Errorf("compare %d: %w", i, err)
		}
	}
	for _, b := range [...]struct {
		what string
		cmds []Command
	}{{"then", c.Then}, {"else", c.Else}} {
		for i := range b.cmds {
			if err := checkCommand(&b.cmds[i], true); err != nil {
				return fmt.Errorf("%s %d: %w", b.what, i, err)
			}
		}
	}
	if len(c.Exports) > MaxExports {
		return fmt.Errorf("%d exports, max %d: %w", len(c.Exports), MaxExports, ErrTooLarge)
	}
	for i := range c.Exports {
		if err := checkExport(c.Node, &c.Exports[i]); err != nil {
			return fmt.Errorf("export %d: %w", i, err)
		}
	}
	return nil
}

func checkExport(node string, x *Export) error {
	if err := checkSize("kind", len(x.Kind), MaxNameSize); err != nil {
		return err
	}
	if n := len(exportKey(node, x.Kind, x.Name)); n > MaxKeySize {
		return fmt.Errorf("key is %d bytes, max %d: %w", n, MaxKeySize, ErrTooLarge)
	}
	return checkSize("data", len(x.Data), MaxValueSize)
}

func checkSize(what string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("%s is %d bytes, max %d: %w", what, n, limit, ErrTooLarge)
	}
	return nil
}

// command writes c as a map of its non-zero fields, in declaration order.
func (w *writer) command(c *Command) {
	present := [...]bool{
		true, c.Key != "", len(c.Value) > 0, c.Ephemeral, c.Node != "",
		len(c.Compares) > 0, len(c.Then) > 0, len(c.Else) > 0, len(c.Exports) > 0,
		c.Sema != "", c.Count != 0, c.Holder != "", c.Term != 0, c.Request != "",
	}
	n := 0
	for _, p := range present {
		if p {
			n++
		}
	}
	w.mapLen(n)
	w.str("o")
	w.uint(uint64(c.Op))
	if present[1] {
		w.str("k")
		w.str(c.Key)
	}
	if present[2] {
		w.str("v")
		w.bytes(c.Value)
	}
	if present[3] {
		w.str("e")
		w.bool(true)
	}
	if present[4] {
		w.str("n")
		w.str(c.Node)
	}
	if present[5] {
		w.str("c")
		w.arrayLen(len(c.Compares))
		for _, cmp := range c.Compares {
			w.compare(cmp)
		}
	}
	for i, b := range [...]struct {
		tag  string
		cmds []Command
	}{{"t", c.Then}, {"x", c.Else}} {
		if present[6+i] {
			w.str(b.tag)
			w.arrayLen(len(b.cmds))
			for j := range b.cmds {
				w.command(&b.cmds[j])
			}
		}
	}
	if present[8] {
		w.str("xs")
		w.arrayLen(len(c.Exports))
		for _, x := range c.Exports {
			w.mapLen(3)
			w.str("k")
			w.str(x.Kind)
			w.str("n")
			w.str(x.Name)
			w.str("d")
			w.bytes(x.Data)
		}
	}
	if present[9] {
		w.str("s")
		w.str(c.Sema)
	}
	if present[10] {
		w.str("sc")
		w.int(c.Count)
	}
	if present[11] {
		w.str("h")
		w.str(c.Holder)
	}
	if present[12] {
		w.str("tm")
		w.uint(c.Term)
	}
	if present[13] {
		w.str("rq")
		w.str(c.Request)
	}
}

func (w *writer) compare(c Compare) {
	n := 2
	if len(c.Value) > 0 {
		n++
	}
	if c.Rev != 0 {
		n++
	}
	w.mapLen(n)
	w.str("t")
	w.uint(uint64(c.Target))
	w.str("k")
	w.str(c.Key)
	if len(c.Value) > 0 {
		w.str("v")
		w.bytes(c.Value)
	}
	if c.Rev != 0 {
		w.str("r")
		w.uint(c.Rev)
	}
}

// commands reads an array of at most limit commands, naming each elem.
func (r *reader) commands(what, elem string, limit int, nested bool) []Command {
	cmds := readArray(r, what, limit, func(i int) Command {
		c := r.command(nested)
		if r.err != nil {
			r.err = fmt.Errorf("%s %d: %w", elem, i, r.err)
		}
		return c
	})
	if r.err != nil {
		return nil
	}
	return cmds
}

func (r *reader) command(nested bool) Command {
	var c Command
	r.fields("command", func(f string) {
		switch f {
		case "o":
			if v := r.uint("op"); v > 255 {
				r.failf("op %d out of range", v)
			} else {
				c.Op = Op(v)
			}
		case "k":
			c.Key = r.str("key", MaxKeySize)
		case "v":
			c.Value = r.bytes("value", MaxValueSize)
		case "e":
			c.Ephemeral = r.bool("ephemeral")
		case "n":
			c.Node = r.str("node", MaxNameSize)
		case "c", "t", "x":
			if nested {
				r.failf("transactions do not nest")
				break
			}
			switch f {
			case "c":
				c.Compares = r.compares()
			case "t":
				c.Then = r.commands("then", "then", MaxTxnOps, true)
			default:
				c.Else = r.commands("else", "else", MaxTxnOps, true)
			}
		case "xs":
			c.Exports = r.exports()
		case "s":
			c.Sema = r.str("sema", MaxNameSize)
		case "sc":
			c.Count = r.int("count")
		case "h":
			c.Holder = r.str("holder", MaxNameSize)
		case "tm":
			c.Term = r.uint("term")
		case "rq":
			c.Request = r.str("request", MaxNameSize)
		default:
			r.failf("unknown command field %q", f)
		}
	})
	return c
}

func (r *reader) compares() []Compare {
	return readArray(r, "compares", MaxTxnOps, func(i int) Compare {
		var c Compare
		r.fields("compare", func(f string) {
			switch f {
			case "t":
				if v := r.uint("target"); v > 255 {
					r.failf("compare %d: target %d out of range", i, v)
				} else {
					c.Target = CompareTarget(v)
				}
			case "k":
				c.Key = r.str("key", MaxKeySize)
			case "v":
				c.Value = r.bytes("value", MaxValueSize)
			case "r":
				c.Rev = r.uint("rev")
			default:
				r.failf("unknown compare field %q", f)
			}
		})
		return c
	})
}

func (r *reader) exports() []Export {
	return readArray(r, "exports", MaxExports, func(int) Export {
		var x Export
		r.fields("export", func(f string) {
			switch f {
			case "k":
				x.Kind = r.str("kind", MaxNameSize)
			case "n":
				x.Name = r.str("name", MaxKeySize)
			case "d":
				x.Data = r.bytes("data", MaxValueSize)
			default:
				r.failf("unknown export field %q", f)
			}
		})
		return x
	})
}
