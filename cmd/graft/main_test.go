package main

import (
	"bytes"
	"context"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
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
	// The tests read agents' logs as text; with --log-format's default,
	// auto, a log to a pipe or a buffer would be JSON. The agents the tests
	// start inherit it; TestLogFormatAutoIsTextOnATerminalAndJSONElsewhere
	// removes it.
	if err := os.Setenv("GRAFT_LOG_FORMAT", "text"); err != nil {
		panic(err)
	}
	// memberlist's Shutdown does not wait for a probe in flight, which ends
	// within its probe interval (a second) on its own: a test that stops
	// an in-process agent last would otherwise fail now and then. A
	// memberlist never shut down still shows, by its other goroutines.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
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

// Two stop signals a few milliseconds apart (GNU timeout sends SIGTERM to
// its command and then to the command's process group) are one request to
// stop; a signal after repeatWindow is the second, which cancels running
// work.
func TestTwoSIGTERMsMillisecondsApartCountAsOneStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sigs := make(chan os.Signal, 2)
		released := make(chan struct{})
		ctx, hard, stop := countStops(t.Context(), sigs, func() { close(released) })
		defer stop()

		sigs <- syscall.SIGTERM
		time.Sleep(3 * time.Millisecond)
		sigs <- syscall.SIGTERM
		synctest.Wait()
		if ctx.Err() == nil {
			t.Fatal("the first SIGTERM did not stop the agent")
		}
		if isClosed(hard) {
			t.Fatal("two SIGTERMs 3ms apart counted as two: the second aborted running work")
		}

		time.Sleep(repeatWindow)
		sigs <- os.Interrupt
		synctest.Wait()
		if !isClosed(hard) || !isClosed(released) {
			t.Errorf("a signal %v after the first did not count as the second (hard closed: %v, signals released: %v)",
				repeatWindow+3*time.Millisecond, isClosed(hard), isClosed(released))
		}
	})
}
