// Package integration runs the graft binary on several hosts, each a Linux
// network namespace with an address of its own on a bridge, and checks
// what a cluster does when its hosts are killed, frozen, cut off,
// restarted or moved to another address.
//
// The package holds only tests: `make integration` runs them. They need
// root and the `ip` command (iproute2), and skip, saying which is missing,
// without them. The harness (main_test.go, network_test.go, host_test.go,
// cluster_test.go, leftovers_test.go) builds the binary once, gives every
// test a bridge and namespaces named after the test process's PID, and
// removes them when the test ends, as well as those an earlier run that
// crashed left behind.
package integration
