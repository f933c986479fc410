package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/graftcm/graft/fsm"
)

// allocated is how many bytes fn allocates on the heap (the fuzz worker
// runs one input at a time, so little else allocates meanwhile).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// frameAllocBound is what reading a frame from data may allocate: the
// body its header announces (capped at maxFrame, the decoder's own
// limit), and a constant share of the input's bytes for what the body
// decodes to. A 40-byte fsm.Result from each byte of input is the most a
// Response holds; 64 per byte leaves room for the decoder's own state.
func frameAllocBound(data []byte) uint64 {
	var body uint64
	if len(data) >= 4 {
		body = min(uint64(binary.BigEndian.Uint32(data)), maxFrame)
	}
	return body + 64*uint64(len(data)) + 64<<10
}

func frameOf(tb testing.TB, v any) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := writeFrame(&b, v); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// checkFrameError fails unless err says what was wrong with the frame: a
// frame cut short ends as the stream does, anything else is the RPC's.
func checkFrameError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	if !strings.HasPrefix(err.Error(), "rpc: ") {
		t.Fatalf("frame error %q does not say it is the RPC's", err)
	}
}

func requestSeeds(f *testing.F) {
	batch, err := fsm.EncodeBatch([]fsm.Command{
		{Op: fsm.OpFence, Term: 3, Request: "n1/42"},
		{Op: fsm.OpPut, Key: "k", Value: []byte("v")},
		{Op: fsm.OpSemaAcquire, Key: "s", Count: 1, Holder: "n1/h"},
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, req := range []Request{
		{Op: OpApply, Data: batch},
		{Op: OpReadIndex},
		{Op: OpStats},
		{Op: OpLeave, ID: "n2"},
		{Op: 99, Data: []byte{0}, ID: strings.Repeat("x", 300)},
	} {
		f.Add(frameOf(f, &req))
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 6, 0x81, 0xa1, 'd', 0xdd, 0xff, 0xff})
}

func responseSeeds(f *testing.F) {
	for _, resp := range []Response{
		{Code: CodeOK, Results: []fsm.Result{{Rev: 7}, {Rev: 8, OK: true}, {Rev: 9, Granted: true, Token: 9, Err: "x"}}},
		{Code: CodeNotLeader, Leader: "10.0.0.2:7946", Term: 4},
		{Code: CodeOK, Index: 12, Term: 3, Applied: 11},
		{Code: CodeFailed, Err: "fsm: command 0: key is empty"},
		{Code: CodeUnknown, Err: "raft: leadership lost"},
		{Code: CodeRefused, Err: "removing it would leave the voters without a quorum"},
	} {
		f.Add(frameOf(f, &resp))
	}
	f.Add([]byte{0, 0, 0, 6, 0x81, 0xa1, 'r', 0xdc, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 8, 0x81, 0xa1, 'r', 0xdd, 0x7f, 0xff, 0xff, 0xff})
	f.Add(append([]byte{0, 0, 0x10, 0}, bytes.Repeat([]byte{0x91}, 0x1000)...))

}

// normalRequest is req as it encodes: omitempty writes an empty slice as
// none, which decodes as nil.
func normalRequest(req Request) Request {
	if len(req.Data) == 0 {
		req.Data = nil
	}
	return req
}

func normalResponse(resp Response) Response {
	if len(resp.Results) == 0 {
		resp.Results = nil
	}
	return resp
}

// FuzzReadRequest reads a request frame as the cluster port's RPC server
// does: whatever a peer sends, the read neither panics nor allocates past
// the frame limit and a constant times the input, its errors are the
// RPC's, and a request it accepts encodes to a frame that reads the same.
func FuzzReadRequest(f *testing.F) {
	requestSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		var err error
		if n := allocated(func() { err = readFrame(bytes.NewReader(data), &req) }); n > frameAllocBound(data) {
			t.Fatalf("reading a %d-byte input allocated %d bytes, over %d", len(data), n, frameAllocBound(data))
		}
		if err != nil {
			checkFrameError(t, err)
			return
		}
		var again Request
		if err := readFrame(bytes.NewReader(frameOf(t, &req)), &again); err != nil {
			t.Fatalf("a decoded request does not read back: %v", err)
		}
		if !reflect.DeepEqual(normalRequest(req), normalRequest(again)) {
			t.Fatalf("request changed on the round trip:\n%+v\n%+v", req, again)
		}
	})
}

// FuzzReadResponse reads a response frame as a node's RPC client does,
// with the same properties: a peer cannot crash the caller or make it
// allocate without bound.
func FuzzReadResponse(f *testing.F) {
	responseSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp Response
		var err error
		if n := allocated(func() { err = readFrame(bytes.NewReader(data), &resp) }); n > frameAllocBound(data) {
			t.Fatalf("reading a %d-byte input allocated %d bytes, over %d", len(data), n, frameAllocBound(data))
		}
		if err != nil {
			checkFrameError(t, err)
			return
		}
		var again Response
		if err := readFrame(bytes.NewReader(frameOf(t, &resp)), &again); err != nil {
			t.Fatalf("a decoded response does not read back: %v", err)
		}
		if !reflect.DeepEqual(normalResponse(resp), normalResponse(again)) {
			t.Fatalf("response changed on the round trip:\n%+v\n%+v", resp, again)
		}
	})
}
