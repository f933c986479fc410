package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func mustEncodeCommands(t *testing.T, cmds ...Command) Encoded {
	t.Helper()
	e, err := EncodeCommands(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestJoinedPartsAreTheEntryEncodeBatchMakes: an entry joined from
// commands encoded apart is byte for byte the one EncodeBatch makes of
// them all, so a write encoded once where it is made lands in the log as
// it would have.
func TestJoinedPartsAreTheEntryEncodeBatchMakes(t *testing.T) {
	fence := Command{Op: OpFence, Term: 7, Request: "req-1"}
	a := []Command{put("a", "1"), fullCommand()}
	b := []Command{del("b"), exportSet("n1", Export{Kind: "file", Name: "/x", Data: []byte("d")})}
	want, err := EncodeBatch(append(append([]Command{fence}, a...), b...))
	if err != nil {
		t.Fatal(err)
	}
	got, err := JoinBatch(mustEncodeCommands(t, fence), mustEncodeCommands(t, a...), Encoded{}, mustEncodeCommands(t, b...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("joined entry differs from EncodeBatch's:\n got %x\nwant %x", got, want)
	}
	// Past 15 commands the array header takes 3 bytes.
	var many []Command
	for i := range 20 {
		many = append(many, put("m"+itoa(uint64(i)), "v"))
	}
	want20, err := EncodeBatch(many)
	if err != nil {
		t.Fatal(err)
	}
	if got20, err := JoinBatch(mustEncodeCommands(t, many[:7]...), mustEncodeCommands(t, many[7:]...)); err != nil || !bytes.Equal(got20, want20) {
		t.Errorf("20 commands joined: %v\n got %x\nwant %x", err, got20, want20)
	}
	// Split after the fence, the rest joins with another fence into the
	// entry that fence and the same commands make.
	cmds, rest, err := SplitBatch(got, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cmds[1:], append(append([]Command(nil), a...), b...)) || cmds[0].Term != 7 {
		t.Errorf("split decoded %+v", cmds)
	}
	if rest.Len() != len(a)+len(b) {
		t.Errorf("rest holds %d commands, want %d", rest.Len(), len(a)+len(b))
	}
	other := Command{Op: OpFence, Term: 8, Request: "req-2"}
	again, err := JoinBatch(mustEncodeCommands(t, other), rest)
	if err != nil {
		t.Fatal(err)
	}
	want, err = EncodeBatch(append([]Command{other}, cmds[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, want) {
		t.Errorf("rejoined entry differs from EncodeBatch's:\n got %x\nwant %x", again, want)
	}
}

// TestJoinBatchKeepsTheEntryLimits: parts that each fit but together
// break a limit of one entry are refused, naming the limit.
func TestJoinBatchKeepsTheEntryLimits(t *testing.T) {
	many := mustEncodeCommands(t, make([]Command, MaxBatch)...)
	if _, err := JoinBatch(many); err != nil {
		t.Fatalf("%d commands: %v", MaxBatch, err)
	}
	if _, err := JoinBatch(many, mustEncodeCommands(t, put("k", "v"))); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "commands") {
		t.Errorf("%d commands: %v, want ErrTooLarge naming the commands", MaxBatch+1, err)
	}
	big := mustEncodeCommands(t, Command{Op: OpPut, Key: "k", Value: make([]byte, MaxValueSize)})
	var parts []Encoded
	for range MaxEntrySize / MaxValueSize { // each a little over MaxValueSize
		parts = append(parts, big)
	}
	if _, err := JoinBatch(parts...); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("%d values of %d bytes: %v, want ErrTooLarge naming the bytes", len(parts), MaxValueSize, err)
	}
	if err := CheckJoin(parts[1:]...); err != nil {
		t.Errorf("%d values of %d bytes: %v, want them to fit", len(parts)-1, MaxValueSize, err)
	}
	if err := CheckJoin(parts...); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckJoin of %d values of %d bytes: %v, want ErrTooLarge", len(parts), MaxValueSize, err)
	}
	if _, err := EncodeCommands([]Command{{Op: OpPut, Key: strings.Repeat("k", MaxKeySize+1)}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a key too long: %v, want ErrTooLarge", err)
	}
}

// TestSplitBatchRefusesWhatDecodeBatchRefuses: the entry is untrusted.
func TestSplitBatchRefusesWhatDecodeBatchRefuses(t *testing.T) {
	for name, data := range map[string][]byte{"empty": nil, "format": {9, 0x90}, "trailing": {batchFormat, 0x90, 0}} {
		if _, _, err := SplitBatch(data, 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	entry, err := EncodeBatch([]Command{put("a", "1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := SplitBatch(entry, 2); err == nil {
		t.Error("split from command 2 of 1: no error")
	}
}
