package discovery

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// The wire format of one packet, big-endian:
//
//	0   magic "gDSC"
//	4   version (2)
//	5   kind: 1 announcement, 2 query
//	6   flags: 1 bootstrapped, 2 fresh, 4 settled
//	7   0
//	8   boot: the sender's start time, in nanoseconds since the epoch
//	16  seq: the packets the sender sent this run, this one included
//	24  sent: when the sender sent it, in nanoseconds since the epoch
//	32  five strings, each a length byte and its bytes: cluster name,
//	    node name, gossip address, cluster ID, candidate
//	..  HMAC-SHA256, under the derived key, of every byte before it
//
// Version 1 had no send time: its packets are malformed to version 2.
const (
	magic      = "gDSC"
	version    = 2
	headerLen  = 32
	macLen     = sha256.Size
	maxField   = 255
	numFields  = 5
	minPacket  = headerLen + numFields + macLen
	MaxPacket  = headerLen + numFields*(1+maxField) + macLen // 1344: fits an Ethernet frame
	derivedLen = 32
)

// Packet kinds.
const (
	kindAnnounce byte = 1
	kindQuery    byte = 2
)

// Flags.
const (
	flagBootstrapped byte = 1
	flagFresh        byte = 2
	flagSettled      byte = 4
)

// keyInfo is the HKDF label of the announcement key: a key derived for
// this use only, so a packet's MAC reveals nothing of the cluster key or
// of the keys derived from it for gossip and TLS.
const keyInfo = "graft discovery announcement key v1"

// ErrEmptyKey is returned by DeriveKey for an empty cluster key.
var ErrEmptyKey = errors.New("discovery: empty cluster key")

// DeriveKey returns the 32-byte key that authenticates announcements:
// HKDF-SHA256 of the cluster key's bytes with a fixed label. Every holder
// of the cluster key derives the same one; the key itself never reaches
// this package's packets or its Config.
func DeriveKey(clusterKey []byte) ([]byte, error) {
	if len(clusterKey) == 0 {
		return nil, ErrEmptyKey
	}
	return hkdf.Key(sha256.New, clusterKey, nil, keyInfo, derivedLen)
}

// message is one packet's content.
type message struct {
	kind         byte
	bootstrapped bool
	fresh        bool
	settled      bool
	boot, seq    uint64
	sent         uint64 // when it was sent, in nanoseconds since the epoch
	cluster      string
	node         string
	addr         string // gossip address
	clusterID    string
	candidate    string // the fresh node this one would have bootstrap
}

// fields returns the message's strings in wire order.
func (m *message) fields() [numFields]string {
	return [numFields]string{m.cluster, m.node, m.addr, m.clusterID, m.candidate}
}

// errFieldTooLong is returned by encode for a string over maxField bytes.
var errFieldTooLong = errors.New("discovery: a field is longer than 255 bytes")

// encode appends the message and its MAC under key to dst.
func (m *message) encode(dst []byte, mac hash.Hash) ([]byte, error) {
	b := append(dst, magic...)
	var flags byte
	if m.bootstrapped {
		flags |= flagBootstrapped
	}
	if m.fresh {
		flags |= flagFresh
	}
	if m.settled {
		flags |= flagSettled
	}
	b = append(b, version, m.kind, flags, 0)
	b = binary.BigEndian.AppendUint64(b, m.boot)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = binary.BigEndian.AppendUint64(b, m.sent)
	for _, f := range m.fields() {
		if len(f) > maxField {
			return dst, fmt.Errorf("%w: %.40q...", errFieldTooLong, f)
		}
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	mac.Reset()
	mac.Write(b[len(dst):])
	return mac.Sum(b), nil
}

// Why a packet is ignored.
type reason int

const (
	reasonOversized     reason = iota // longer than MaxPacket
	reasonMalformed                   // not a packet of this protocol and version
	reasonOtherCluster                // another cluster name
	reasonUnauthentic                 // its MAC is not this cluster's key's
	reasonReplayed                    // an old sequence number of a known sender
	reasonStale                       // sent longer ago (or later) than MaxSkew from now
	reasonDuplicateName               // another node announces this node's name
	reasonPeersFull                   // a new sender while MaxPeers are remembered
	numReasons
)

var reasonNames = [numReasons]string{"oversized", "malformed", "other_cluster", "unauthenticated", "replayed",
	"stale", "duplicate_name", "peers_full"}

func (r reason) String() string { return reasonNames[r] }

// frame is a packet whose layout was checked: the offsets of its fields.
// Checking allocates nothing.
type frame struct {
	b    []byte
	offs [numFields][2]int // start and end of each string
	body int               // where the MAC starts
}

// split checks the packet's layout without allocating.
func split(b []byte) (frame, reason, bool) {
	f := frame{b: b}
	switch {
	case len(b) > MaxPacket:
		return f, reasonOversized, false
	case len(b) < minPacket || string(b[:4]) != magic || b[4] != version,
		b[5] != kindAnnounce && b[5] != kindQuery, b[7] != 0:
		return f, reasonMalformed, false
	}
	at := headerLen
	for i := range numFields {
		if at >= len(b)-macLen {
			return f, reasonMalformed, false
		}
		n := int(b[at])
		at++
		if at+n > len(b)-macLen {
			return f, reasonMalformed, false
		}
		f.offs[i] = [2]int{at, at + n}
		at += n
	}
	if at != len(b)-macLen {
		return f, reasonMalformed, false
	}
	f.body = at
	return f, 0, true
}

// sent is the frame's send time, in nanoseconds since the epoch.
func (f frame) sent() uint64 { return binary.BigEndian.Uint64(f.b[24:32]) }

func (f frame) field(i int) []byte { return f.b[f.offs[i][0]:f.offs[i][1]] }

// authentic reports whether the frame's MAC is key's (mac is an HMAC under
// it); sum is scratch space of macLen bytes, so that checking allocates
// nothing.
func (f frame) authentic(mac hash.Hash, sum []byte) bool {
	mac.Reset()
	mac.Write(f.b[:f.body])
	return hmac.Equal(mac.Sum(sum[:0]), f.b[f.body:])
}

// message decodes the frame; only authentic (or, keyless, looked-at)
// frames are decoded, so only they allocate.
func (f frame) message() message {
	m := message{kind: f.b[5], bootstrapped: f.b[6]&flagBootstrapped != 0, fresh: f.b[6]&flagFresh != 0,
		settled: f.b[6]&flagSettled != 0,
		boot:    binary.BigEndian.Uint64(f.b[8:16]), seq: binary.BigEndian.Uint64(f.b[16:24]), sent: f.sent()}
	m.cluster, m.node, m.addr = string(f.field(0)), string(f.field(1)), string(f.field(2))
	m.clusterID, m.candidate = string(f.field(3)), string(f.field(4))
	return m
}

// newMAC returns an HMAC-SHA256 under key.
func newMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }
