// Package faultsuite runs graft clusters in-process under random fault
// schedules and judges what their clients saw with the checkers of
// internal/faultcheck.
//
// The package holds only tests. Each schedule starts three cluster
// servers (package clustertest's Fleet, inside a testing/synctest bubble,
// so raft, gossip and the schedule run on a fake clock), a World on each,
// and clients on every node that put, get (linearizably), delete and
// compare-and-swap a few keys, watch them, and take and give back two
// cluster semaphores, while the schedule kills and restarts, cuts off or
// freezes the leader or a follower, or cuts the leader and a follower
// apart (the third node a bridge), one fault at a time. Then it heals, waits for the cluster to
// converge, restarts every node at once, and runs the four checkers:
// linearizability of every key, semaphore safety, watch completeness and
// durability. Each schedule's seed is logged; GRAFT_FAULT_SEED=<n>
// replays that one schedule (the faults and the clients' choices; the
// interleaving of goroutines may differ), and GRAFT_FAULT_SCHEDULES=<n>
// runs n random ones instead of the default 20; GRAFT_SOAK=<duration>
// (make soak) runs random ones back to back for that long, checking that
// neither the heap nor the goroutines grow between them. What was committed is
// read from the raft log every node's store was given (clustertest keeps
// the entries raft compacts into its frequent snapshots), replayed.
package faultsuite
