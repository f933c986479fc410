package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/cluster"
)

// TestMain doubles as the graft binary: with GRAFT_TEST_BINARY=1 the test
// executable runs main, so end-to-end tests exercise the real program (built
// with the race detector when the tests are) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("GRAFT_TEST_BINARY") == "1" {
		os.Exit(mainWith(testTimings))
	}
	goleak.VerifyTestMain(m)
}

// testTimings makes the cluster leader of the agents the tests start
// reconcile membership every 100ms and promote a spare caught up for a
// second (production: every second, and after Stabilization), so cluster
// tests take seconds. Failure detection and raft keep their production
// timings.
func testTimings(c *cluster.ServerConfig) {
	c.ReconcileInterval = 100 * time.Millisecond
	c.Stabilization = time.Second
}

// graft runs graft in-process and returns its exit code and output.
func graft(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return cliContext(t.Context(), args...)
}

func cliContext(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, make(chan struct{}), append([]string{"graft"}, testClusterAddr(args)...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// testClusterAddr gives a `graft run` command line --cluster-addr and
// --gossip-addr 127.0.0.1:0, so agents in tests never clash on the default
// ports (or with an agent running on the machine). Later flags override
// them.
func testClusterAddr(args []string) []string {
	if len(args) > 0 && args[0] == "run" {
		return append([]string{"run", "--cluster-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"}, args[1:]...)
	}
	return args
}
