package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// fullCommand sets every field of a Command, its Compare and its Export.
func fullCommand() Command {
	return Command{
		Op: OpTxn, Key: "k", Value: []byte("v"), Ephemeral: true, Node: "n",
		Compares: []Compare{{Target: CompareModRev, Key: "c", Value: []byte("cv"), Rev: 7}},
		Then:     []Command{put("t", "1")},
		Else:     []Command{{Op: OpDelete, Key: "x"}},
		Exports:  []Export{{Kind: "file", Name: "/f", Data: []byte("d")}},
		Sema:     "s", Count: -3, Holder: "h", Term: 9, Request: "r",
	}
}

// allSet fails for a zero field anywhere in v, so a field added to the
// types without a test (and codec support) is noticed.
func allSet(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			allSet(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("%s is empty", path)
		}
		if e := v.Type().Elem(); e.Kind() == reflect.Struct && e != reflect.TypeFor[Command]() {
			for i := range v.Len() {
				allSet(t, path, v.Index(i))
			}
		}
	default:
		if v.IsZero() {
			t.Errorf("%s is zero", path)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	full := fullCommand()
	allSet(t, "Command", reflect.ValueOf(full))
	batches := [][]Command{
		{},
		{full},
		{put("a", ""), {Op: OpExpireNode, Node: "n"}, acquire("s", MaxSemaCount, "n", "h"), fullCommand()},
	}
	for _, cmds := range batches {
		data, err := EncodeBatch(cmds)
		if err != nil {
			t.Fatalf("EncodeBatch: %v", err)
		}
		got, err := DecodeBatch(data)
		if err != nil {
			t.Fatalf("DecodeBatch: %v", err)
		}
		if !reflect.DeepEqual(got, normalize(cmds)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, cmds)
		}
		// Reflection-based msgpack of the same commands decodes alike.
		got, err = DecodeBatch(marshalBatch(t, cmds))
		if err != nil || !reflect.DeepEqual(got, normalize(cmds)) {
			t.Fatalf("msgpack.Marshal round trip: %v\n got %+v\nwant %+v", err, got, cmds)
		}
	}
}

// normalize makes empty slices nil, as decoding does.
func normalize(cmds []Command) []Command {
	out := make([]Command, len(cmds))
	for i, c := range cmds {
		if len(c.Value) == 0 {
			c.Value = nil
		}
		if len(c.Then) > 0 {
			c.Then = normalize(c.Then)
		}
		if len(c.Else) > 0 {
			c.Else = normalize(c.Else)
		}
		out[i] = c
	}
	return out
}

func marshalBatch(t testing.TB, cmds []Command) []byte {
	t.Helper()
	b, err := msgpack.Marshal(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{batchFormat}, b...)
}

func TestBatchLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int, c Command) []Command {
		cmds := make([]Command, n)
		for i := range cmds {
			cmds[i] = c
		}
		return cmds
	}
	xs := make([]Export, MaxExports+1)
	for i := range xs {
		xs[i] = Export{Kind: "k", Name: itoa(uint64(i))}
	}
	for _, tc := range []struct {
		name string
		cmds []Command
		err  string
	}{
		{"key", []Command{put(long(MaxKeySize+1), "")}, "command 0: key is 4097 bytes, max 4096"},
		{"value", []Command{put("a", ""), put("a", long(MaxValueSize+1))}, "command 1: value is 1048577 bytes, max 1048576"},
		{"node", []Command{eput(long(MaxNameSize+1), "a", "")}, "node is 257 bytes"},
		{"sema", []Command{acquire(long(MaxNameSize+1), 1, "n", "h")}, "sema is 257 bytes"},
		{"holder", []Command{acquire("s", 1, "n", long(MaxNameSize+1))}, "holder is 257 bytes"},
		{"count", []Command{acquire("s", MaxSemaCount+1, "n", "h")}, "count is 1048577"},
		{"batch", many(MaxBatch+1, del("a")), "4097 commands, max 4096"},
		{"txn ops", []Command{{Op: OpTxn, Compares: make([]Compare, 100), Then: many(100, del("a")), Else: many(57, del("a"))}}, "257 compares and operations, max 256"},
		{"compare key", []Command{{Op: OpTxn, Compares: []Compare{{Key: long(MaxKeySize + 1)}}}}, "compare 0: key is 4097"},
		{"compare value", []Command{{Op: OpTxn, Compares: []Compare{{Value: []byte(long(MaxValueSize + 1))}}}}, "compare 0: value is"},
		{"nested txn", []Command{{Op: OpTxn, Then: []Command{{Op: OpTxn}}}}, "then 0: transactions do not nest"},
		{"nested compares", []Command{{Op: OpTxn, Else: []Command{{Op: OpPut, Compares: []Compare{{}}}}}}, "else 0: transactions do not nest"},
		{"nested value", []Command{{Op: OpTxn, Then: []Command{put("a", long(MaxValueSize+1))}}}, "then 0: value is"},
		{"exports", []Command{exportSet("n", xs...)}, "10001 exports, max 10000"},
		{"export kind", []Command{exportSet("n", Export{Kind: long(MaxNameSize + 1), Name: "n"})}, "export 0: kind is 257"},
		{"export key", []Command{exportSet("n", Export{Kind: "k", Name: long(MaxKeySize)})}, "export 0: key is"},
		{"export data", []Command{exportSet("n", Export{Kind: "k", Name: "n", Data: []byte(long(MaxValueSize + 1))})}, "export 0: data is"},
		{"entry ops", many(MaxBatch, Command{Op: OpTxn, Then: many(16, del("a"))}), "69632 commands, compares and exports, max 65536"},
		{"entry size", many(9, put("a", long(MaxValueSize))), "entry is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EncodeBatch(tc.cmds)
			if !errors.Is(err, ErrTooLarge) && tc.name != "nested txn" && tc.name != "nested compares" {
				t.Fatalf("EncodeBatch error = %v, want ErrTooLarge", err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "encode batch: ") {
				t.Fatalf("EncodeBatch error = %v, want it to contain %q", err, tc.err)
			}
			// Decoding refuses the same batch, encoded without checks.
			_, err = DecodeBatch(marshalBatch(t, tc.cmds))
			if err == nil || !strings.HasPrefix(err.Error(), "decode batch: ") {
				t.Fatalf("DecodeBatch error = %v, want an error", err)
			}
		})
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := mustEncode(t, put("a", "1"))
	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"empty", nil, "empty entry"},
		{"format", append([]byte{2}, good[1:]...), "unknown format 2"},
		{"nil batch", []byte{batchFormat, 0xc0}, "batch is nil"},
		{"not an array", []byte{batchFormat, 0x01}, "batch"},
		{"trailing", append(bytes.Clone(good), 0x00), "1 trailing bytes"},
		{"truncated", good[:len(good)-1], "EOF"},
		{"unknown field", encodeRaw(t, []map[string]any{{"o": 1, "k": "a", "zz": 1}}), `unknown command field "zz"`},
		{"long field name", encodeRaw(t, []map[string]any{{strings.Repeat("o", 20): 1}}), "field name is 20 bytes"},
		{"op out of range", encodeRaw(t, []map[string]any{{"o": 300}}), "op 300 out of range"},
		{"wrong type", encodeRaw(t, []map[string]any{{"o": "put"}}), "op"},
		{"unknown compare field", encodeRaw(t, []map[string]any{{"o": 4, "c": []map[string]any{{"q": 1}}}}), `unknown compare field "q"`},
		{"unknown export field", encodeRaw(t, []map[string]any{{"o": 5, "xs": []map[string]any{{"q": 1}}}}), `unknown export field "q"`},
		{"huge array", []byte{batchFormat, 0xdd, 0xff, 0xff, 0xff, 0xff}, "limit exceeded"},
		{"huge string", []byte{batchFormat, 0x91, 0x81, 0xa1, 'k', 0xdb, 0x7f, 0xff, 0xff, 0xff}, "limit exceeded"},
		{"too many fields", []byte{batchFormat, 0x91, 0xdf, 0xff, 0xff, 0xff, 0xff}, "limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("DecodeBatch = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

func encodeRaw(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{batchFormat}, b...)
}
