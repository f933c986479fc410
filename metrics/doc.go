// Package metrics exposes an agent's state to Prometheus: its own registry of
// raft, gossip, World and engine series, the Go and process collectors, raft's
// and memberlist's go-metrics bridged in, and the HTTP server for /metrics.
package metrics
