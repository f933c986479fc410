package raftnode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config configures a Node. Start from DefaultConfig (or TestConfig).
type Config struct {
	// NodeID names this node in the raft group; it must be unique in the
	// cluster and stable across restarts. Required.
	NodeID string
	// DataDir holds the raft log, stable store and snapshots. Required for
	// Open unless InMemory; nodes built with New on in-memory stores
	// ignore it.
	DataDir string
	// InMemory makes Open keep the raft log, stable store and snapshots in
	// memory: the node's state, and so its cluster, end when it closes.
	InMemory bool

	// BindAddr is the TCP address of the cluster port (raft and forwarding
	// RPC), such as "0.0.0.0:7947". Used by Open.
	BindAddr string
	// AdvertiseAddr is the address other nodes reach this one at. Empty
	// means BindAddr, or, if BindAddr's host is unspecified, the first
	// non-loopback address of the host.
	AdvertiseAddr string

	// ServerTLS and ClientTLS, when set, wrap every cluster-port connection
	// in TLS (the cluster key's mutual TLS). Nil means plaintext.
	ServerTLS *tls.Config
	ClientTLS *tls.Config

	// Bootstrap makes a standalone node (one no cluster.Server manages)
	// with no raft state start a new cluster with itself as the only
	// voter. A node with raft state never bootstraps. A Server decides
	// for itself and refuses a config that sets it.
	Bootstrap bool

	// Raft timing. A leader that stops sending heartbeats (every tenth to
	// fifth of HeartbeatTimeout) is replaced once its followers have not
	// heard from it for HeartbeatTimeout, plus an election; a split vote
	// is retried after ElectionTimeout (randomised up to twice it).
	// LeaderLeaseTimeout bounds how long a leader cut off from a majority
	// keeps believing it leads, at most HeartbeatTimeout.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// MaxAppendEntries is how many log entries one append carries.
	MaxAppendEntries int
	// SnapshotThreshold is how many log entries since the last snapshot make
	// raft take another; SnapshotInterval is how often it checks.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// slightly lagging followers catch up without a snapshot install.
	TrailingLogs uint64

	// ForwardTimeout bounds how long a write waits for a leader to exist and
	// to answer; ApplyTimeout how long the leader waits for raft to accept
	// an entry.
	ForwardTimeout time.Duration
	ApplyTimeout   time.Duration

	// Logger receives the node's and raft's logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the production settings: a 500 ms heartbeat and
// election timeout and a 500 ms leader lease. A follower stands for
// election once it has not heard from its leader for 500 ms (heartbeats
// come every 50 to 100 ms; see watchLeaderSilence), so a leader's death
// costs about 0.6 s from a kill to the next write (1.2 s at raft's own
// 1 s timeouts). The lease, kept at raft's 500 ms, is what unwanted
// elections came from: under a minute of writes from 128 clients on a
// loaded 2-core machine, a 250 ms lease made two elections in each of
// two runs, 500 ms none, with a 500 ms or a 1 s heartbeat timeout
// (BenchmarkLeaderStaysUnderWrites).
func DefaultConfig() Config {
	return Config{
		BindAddr:           "0.0.0.0:7947",
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		MaxAppendEntries:   256,
		SnapshotThreshold:  16384,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		ForwardTimeout:     10 * time.Second,
		ApplyTimeout:       10 * time.Second,
	}
}

// TestConfig returns settings for in-process tests: short timeouts and
// frequent snapshots.
func TestConfig() Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1:0"
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 64
	c.SnapshotInterval = 200 * time.Millisecond
	c.TrailingLogs = 16
	c.ForwardTimeout = 5 * time.Second
	c.ApplyTimeout = 5 * time.Second
	return c
}

// raftTimingRules reports what hashicorp/raft would refuse only once the
// node starts, after its ports are bound: timeouts below raft's minimums,
// an election timeout shorter than the heartbeat timeout, a leader lease
// longer than it.
func (c Config) raftTimingRules(bad func(string, ...any)) {
	for _, d := range []struct {
		name     string
		v, least time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout, 5 * time.Millisecond},
		{"ElectionTimeout", c.ElectionTimeout, 5 * time.Millisecond},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"CommitTimeout", c.CommitTimeout, time.Millisecond},
		{"SnapshotInterval", c.SnapshotInterval, 5 * time.Millisecond},
	} {
		if d.v > 0 && d.v < d.least {
			bad("%s is %v, want at least %v (raft's minimum)", d.name, d.v, d.least)
		}
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout %v is shorter than HeartbeatTimeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout %v is longer than HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
}

// Validate checks the configuration; errors name the field and value.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("cluster config: "+format, args...)) }
	switch {
	case c.NodeID == "":
		bad("NodeID is empty")
	case len(c.NodeID) > 256 || strings.ContainsAny(c.NodeID, "/ \t\n"):
		bad("NodeID %q: want at most 256 characters, no slashes or spaces", c.NodeID)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout}, {"ElectionTimeout", c.ElectionTimeout},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout}, {"CommitTimeout", c.CommitTimeout},
		{"SnapshotInterval", c.SnapshotInterval}, {"ForwardTimeout", c.ForwardTimeout},
		{"ApplyTimeout", c.ApplyTimeout},
	} {
		if d.v <= 0 {
			bad("%s is %v, want a positive duration", d.name, d.v)
		}
	}
	c.raftTimingRules(bad)
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		bad("MaxAppendEntries is %d, want 1 to 1024", c.MaxAppendEntries)
	}
	if c.SnapshotThreshold == 0 {
		bad("SnapshotThreshold is 0")
	}
	if (c.ServerTLS == nil) != (c.ClientTLS == nil) {
		bad("ServerTLS and ClientTLS must be set together")
	}
	return errors.Join(errs...)
}
