package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// KV is a key and its value as the API carries it; see the package
// documentation for its JSON form.
type KV struct {
	Key   string
	Value []byte
	// CreateRev and ModRev are the revisions that created the key and last
	// changed it; Version counts its changes since it was created.
	CreateRev uint64
	ModRev    uint64
	Version   uint64
	// Owner is the host an ephemeral key belongs to, else empty.
	Owner string
}

// kvJSON is KV's wire form: exactly one of Value and ValueBase64 is set.
type kvJSON struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	CreateRev   uint64  `json:"create_rev"`
	ModRev      uint64  `json:"mod_rev"`
	Version     uint64  `json:"version"`
	Owner       string  `json:"owner,omitempty"`
}

// MarshalJSON writes the value as a string if it is valid UTF-8, else in
// base64 under "value_base64".
func (kv KV) MarshalJSON() ([]byte, error) { return json.Marshal(kv.wire()) }

func (kv KV) wire() kvJSON {
	j := kvJSON{Key: kv.Key, CreateRev: kv.CreateRev, ModRev: kv.ModRev, Version: kv.Version, Owner: kv.Owner}
	if utf8.Valid(kv.Value) {
		s := string(kv.Value)
		j.Value = &s
	} else {
		s := base64.StdEncoding.EncodeToString(kv.Value)
		j.ValueBase64 = &s
	}
	return j
}

// UnmarshalJSON reads either form of the value.
func (kv *KV) UnmarshalJSON(data []byte) error {
	var j kvJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*kv = KV{Key: j.Key, CreateRev: j.CreateRev, ModRev: j.ModRev, Version: j.Version, Owner: j.Owner}
	switch {
	case j.Value != nil && j.ValueBase64 != nil:
		return fmt.Errorf("key %q: both value and value_base64", j.Key)
	case j.ValueBase64 != nil:
		v, err := base64.StdEncoding.DecodeString(*j.ValueBase64)
		if err != nil {
			return fmt.Errorf("key %q: value_base64: %w", j.Key, err)
		}
		kv.Value = v
	case j.Value != nil:
		kv.Value = []byte(*j.Value)
	}
	return nil
}

// EventType says whether an event put or deleted a key: "put" or "delete".
type EventType string

// The event types.
const (
	EventPut    EventType = "put"
	EventDelete EventType = "delete"
)

// Event is one change of one key. For a delete, KV holds the key as it was,
// with ModRev set to the revision of the delete; KV.ModRev is always the
// event's revision.
type Event struct {
	Type EventType `json:"type"`
	KV   KV        `json:"kv"`
}

// WatchEvent is one object of a watch stream; see the package
// documentation.
type WatchEvent struct {
	// Start marks the first object of a stream: the watch reports every
	// change after Rev.
	Start bool `json:"start,omitempty"`
	// Rev is the revision the watcher has now seen everything up to.
	Rev uint64 `json:"rev"`
	// Events are the changes, in revision order.
	Events []Event `json:"events,omitempty"`
	// Resync says the changes since the last object are lost: State holds
	// every key under the prefix at Rev, to replace what the watcher had.
	Resync bool `json:"resync,omitempty"`
	State  []KV `json:"state,omitempty"`
}

// StreamObject is a line of a watch stream: a WatchEvent or, last, an
// error. The first object also carries the leader contact.
type StreamObject struct {
	WatchEvent
	*Contact
	Error string `json:"error,omitempty"`
}

// The headers of every read answer (a get, a list, a watch), carrying
// the Contact's fields: milliseconds (or -1) and true or false.
const (
	HeaderLastContact = "X-Graft-Last-Contact"
	HeaderKnownLeader = "X-Graft-Known-Leader"
)

// Contact is how recently the node that answered a read had heard from the
// cluster's leader when the read began, a sign of how stale a local read
// may be: a node that has not heard from a leader for a while may miss
// every write committed since. A node in contact can still lag behind in
// applying what it was sent (while it installs a snapshot, say), so a
// read that must see every committed write asks for linearizable. Read answers carry its fields at the top level of their JSON.
type Contact struct {
	// LastContactMS is how many milliseconds before the read began the node
	// last heard from a leader: on the leader, since a majority of the
	// voters last answered it (under 200 when healthy: raft heartbeats
	// every follower every 100 to 200 ms);
	// -1 if never since it started.
	LastContactMS int64 `json:"last_contact_ms"`
	// KnownLeader says whether the node knew of a leader.
	KnownLeader bool `json:"known_leader"`
}

// LastContact returns how long before the read the node last heard from a
// leader, and false if it never had since it started.
func (c Contact) LastContact() (time.Duration, bool) {
	if c.LastContactMS < 0 {
		return 0, false
	}
	return time.Duration(c.LastContactMS) * time.Millisecond, true
}

// Stale reports whether the node had not heard from a leader within limit
// when the read began: the answer may miss writes committed since.
func (c Contact) Stale(limit time.Duration) bool {
	d, ok := c.LastContact()
	return !ok || d > limit
}

// GetAnswer is the body of a get: the KV object with the leader contact's
// fields beside its own.
type GetAnswer struct {
	KV      KV
	Contact *Contact
}

// getAnswerJSON is GetAnswer's wire form.
type getAnswerJSON struct {
	kvJSON
	*Contact
}

// MarshalJSON writes the KV object with the contact's fields at its top
// level.
func (a GetAnswer) MarshalJSON() ([]byte, error) {
	return json.Marshal(getAnswerJSON{kvJSON: a.KV.wire(), Contact: a.Contact})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *GetAnswer) UnmarshalJSON(data []byte) error {
	var c struct {
		*Contact
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	a.Contact = c.Contact
	return a.KV.UnmarshalJSON(data)
}

// ListAnswer is the body of a list: a List and the leader contact.
type ListAnswer struct {
	List
	*Contact
}

// Status is the agent's view of itself and its cluster: the raft node's
// status (whose fields its JSON form carries at top level), the host's name,
// graft's version and the cluster's identity.
type Status struct {
	Host    string `json:"host"`
	Version string `json:"version"`
	// ClusterID identifies the cluster once this node knows it (empty
	// before); GossipAddr is this node's gossip address, the one others
	// --join. Both are empty when the agent runs no membership.
	ClusterID  string `json:"cluster_id,omitempty"`
	GossipAddr string `json:"gossip_address,omitempty"`
	// KeyFingerprint names the cluster key without revealing it: nodes of
	// one cluster show the same.
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	RaftStatus
}

// RaftStatus is the raft node's view of itself and the cluster.
type RaftStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// State is Leader, Follower, Candidate or Shutdown.
	State      string `json:"state"`
	Leader     string `json:"leader"`
	LeaderAddr string `json:"leader_address"`
	Term       uint64 `json:"term"`
	// LastIndex, CommitIndex and AppliedIndex are the node's raft log
	// positions; Revision is the World's revision it has applied.
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Revision     uint64 `json:"revision"`
	// LastContact is when a follower last heard from the leader; zero on
	// the leader.
	LastContact time.Time    `json:"last_contact,omitzero"`
	Servers     []RaftServer `json:"servers"`
}

// RaftServer is one server of the raft configuration.
type RaftServer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Suffrage is "voter" or "nonvoter".
	Suffrage string `json:"suffrage"`
}

// MemberInfo is one node of the cluster as the answering node sees it.
type MemberInfo struct {
	Name string `json:"name"`
	// GossipAddr and RaftAddr are the node's gossip and cluster ports.
	GossipAddr string `json:"gossip_address"`
	RaftAddr   string `json:"raft_address,omitempty"`
	// Gossip is alive, suspect, dead or left.
	Gossip string `json:"gossip"`
	// Role is leader, voter, nonvoter, or none (not in raft yet, or
	// removed).
	Role string `json:"role"`
	// LastContact is when the node last answered the leader (known on the
	// leader), or, for the leader seen from a follower, when it last
	// contacted this node. Zero when unknown.
	LastContact time.Time `json:"last_contact,omitzero"`
	Version     string    `json:"version,omitempty"`
}

// List is the answer to a list: the keys, sorted, and the revision they
// are current at.
type List struct {
	Rev uint64 `json:"rev"`
	KVs []KV   `json:"kvs"`
}

// Write is the answer to a put or a delete: the revision of the change (the
// current one if it changed nothing).
type Write struct {
	Rev uint64 `json:"rev"`
}

// ErrorBody is the JSON body of every failure.
type ErrorBody struct {
	Error string `json:"error"`
}

// Error is a failure the agent answered with.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the agent's explanation.
	Message string
}

func (e *Error) Error() string { return e.Message }

// StatusCode returns the HTTP status of an *Error in err's chain, else 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
