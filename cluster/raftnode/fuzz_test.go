package raftnode

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/internal/msgpackcheck"
)

// scriptedConn is a connection whose peer sent in and then closed its
// side; what the server writes is kept.
type scriptedConn struct {
	net.Conn // nil: only what ServeConn uses is implemented
	in       *bytes.Reader
	out      bytes.Buffer
}

func (c *scriptedConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *scriptedConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *scriptedConn) Close() error                     { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptedConn) SetDeadline(t time.Time) error    { return nil }
func (c *scriptedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 7947}
}

// frame is a request as the RPC client writes it: a length and msgpack.
func frame(tb testing.TB, req transport.Request) []byte {
	tb.Helper()
	body, err := msgpack.Marshal(&req)
	if err != nil {
		tb.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// responses splits what the server wrote into its responses.
func responses(t *testing.T, out []byte) []transport.Response {
	var rs []transport.Response
	for len(out) > 0 {
		if len(out) < 4 || int(binary.BigEndian.Uint32(out)) > len(out)-4 {
			t.Fatalf("the server wrote a partial frame: %x", out)
		}
		n := binary.BigEndian.Uint32(out)
		var r transport.Response
		if err := msgpack.Unmarshal(out[4:4+n], &r); err != nil {
			t.Fatalf("the server wrote a response that does not decode: %v", err)
		}
		rs = append(rs, r)
		out = out[4+n:]
	}
	return rs
}

// fuzzNode is a one-node cluster on in-memory stores, leading.
func fuzzNode(f *testing.F) *Node {
	cfg := TestConfig()
	cfg.NodeID, cfg.Bootstrap = "fuzz", true
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport("fuzz")
	n, err := New(cfg, Deps{FSM: fsm.New(fsm.Options{}), Transport: trans, LogStore: store, StableStore: store,
		SnapshotStore: raft.NewInmemSnapshotStore(), RPC: noRPC{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			f.Fatal("the one node did not lead within 30s")
		}
		<-time.After(10 * time.Millisecond)
	}
	return n
}

// FuzzServeRPC sends a leading node's RPC server whatever a peer could
// send on an RPC connection, forged frames and batches included, and
// checks what it answers: no panic; one well-formed response per request
// at most, and none after a frame that does not decode; a failure says
// why; a forwarded batch that is applied has a result per command.
func FuzzServeRPC(f *testing.F) {
	n := fuzzNode(f)
	batch := func(cmds ...fsm.Command) []byte {
		b, err := fsm.EncodeBatch(cmds)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	put := fsm.Command{Op: fsm.OpPut, Key: "k", Value: []byte("v")}
	for _, reqs := range [][]transport.Request{
		{{Op: transport.OpApply, Data: batch(put)}},
		{{Op: transport.OpApply, Data: batch(fsm.Command{Op: fsm.OpFence, Term: 2, Request: "n1/1"}, put)}},
		{{Op: transport.OpApply, Data: batch(put, fsm.Command{Op: fsm.OpFence, Term: 2})}},
		{{Op: transport.OpApply, Data: batch(fsm.Command{Op: fsm.OpSemaAcquire, Key: "s", Count: 1, Holder: "n1/h"})}},
		{{Op: transport.OpApply, Data: []byte{1, 2, 3}}},
		{{Op: transport.OpReadIndex}, {Op: transport.OpStats}, {Op: transport.OpLeave, ID: "n2"}},
		{{Op: 0}, {Op: 200}},
	} {
		var in []byte
		for _, r := range reqs {
			in = append(in, frame(f, r)...)
		}
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &scriptedConn{in: bytes.NewReader(in)}
		transport.ServeConn(t.Context(), c, n.HandleRPC)
		reqs := requestsIn(in)
		rs := responses(t, c.out.Bytes())
		if len(rs) > len(reqs) {
			t.Fatalf("%d responses to %d requests", len(rs), len(reqs))
		}
		for i, r := range rs {
			req := reqs[i]
			switch {
			case r.Code != transport.CodeOK && r.Code != transport.CodeNotLeader && r.Err == "":
				t.Fatalf("request %d (%+v): code %d without a reason", i, req, r.Code)
			case req.Op == transport.OpApply && r.Code == transport.CodeOK:
				cmds, err := fsm.DecodeBatch(req.Data)
				if err != nil || len(cmds) != len(r.Results) {
					t.Fatalf("request %d: batch applied with %d results, decodes to %d commands (%v)", i, len(r.Results), len(cmds), err)
				}
			case req.Op != transport.OpApply && req.Op != transport.OpReadIndex && req.Op != transport.OpStats && r.Code != transport.CodeFailed:
				t.Fatalf("request %d: op %d, which nothing serves, answered code %d", i, req.Op, r.Code)
			}
		}
	})
}

// requestsIn decodes the requests at the start of in as the server reads
// them, up to the first that does not decode.
func requestsIn(in []byte) []transport.Request {
	var reqs []transport.Request
	r := bytes.NewReader(in)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return reqs
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if int64(n) > int64(r.Len()) {
			return reqs
		}
		body := make([]byte, n)
		_, _ = io.ReadFull(r, body)
		var req transport.Request
		if msgpackcheck.Check(body) != nil || msgpack.Unmarshal(body, &req) != nil {
			return reqs
		}
		reqs = append(reqs, req)
	}
}
