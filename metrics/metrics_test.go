package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// serve serves c on a loopback port until the test ends and returns the
// port's /metrics URL.
func serve(t *testing.T, c *Collector) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

// scrape gets url and parses it with Prometheus' text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// value is the value of the series name with labels (name=value pairs),
// and whether it is there.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func want(t *testing.T, fams map[string]*dto.MetricFamily, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(fams, name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func TestCheckApplyCountedByKindAndResult(t *testing.T) {
	c := New()
	url := serve(t, c)
	c.ObserveCheckApply("file", 2*time.Millisecond, false, nil)
	c.ObserveCheckApply("file", 3*time.Millisecond, true, nil)
	c.ObserveCheckApply("file", time.Millisecond, true, nil)
	c.ObserveCheckApply("exec", time.Second, false, errors.New("exit status 1"))
	fams := scrape(t, url)
	want(t, fams, 1, "graft_checkapply_total", "kind", "file", "result", "unchanged")
	want(t, fams, 2, "graft_checkapply_total", "kind", "file", "result", "changed")
	want(t, fams, 1, "graft_checkapply_total", "kind", "exec", "result", "error")
	want(t, fams, 3, "graft_checkapply_duration_seconds", "kind", "file")
	want(t, fams, 1, "graft_checkapply_duration_seconds", "kind", "exec")
	if h := fams["graft_checkapply_duration_seconds"].GetMetric(); len(h) > 0 {
		for _, m := range h {
			if kindOf(m) == "exec" && m.GetHistogram().GetSampleSum() != 1 {
				t.Errorf("exec's CheckApply durations sum to %vs, want 1", m.GetHistogram().GetSampleSum())
			}
		}
	}
}

func kindOf(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "kind" {
			return l.GetValue()
		}
	}
	return ""
}

func TestResourceStateMissingFromALaterCountDropsToZero(t *testing.T) {
	c := New()
	url := serve(t, c)
	c.SetResourceStates(map[string]int{"ok": 3, "failed": 1})
	c.SetResourceStates(map[string]int{"ok": 4})
	c.SetConverged(true)
	c.ObserveGraphSwap(20 * time.Millisecond)
	fams := scrape(t, url)
	want(t, fams, 4, "graft_resources", "state", "ok")
	want(t, fams, 0, "graft_resources", "state", "failed")
	want(t, fams, 1, "graft_converged")
	want(t, fams, 1, "graft_graph_swaps_total")
	want(t, fams, 1, "graft_graph_swap_duration_seconds")
}

func TestClusterSeriesAreReadAtEachScrape(t *testing.T) {
	c := New()
	url := serve(t, c)
	if _, ok := scrape(t, url)["graft_raft_term"]; ok {
		t.Error("raft series before any cluster was set")
	}
	view := ClusterView{RaftState: "Follower", Term: 2, LastIndex: 10, CommitIndex: 9, AppliedIndex: 7, Revision: 5,
		Members: map[string]int{"alive": 2, "dead": 1}}
	up := true
	c.SetCluster(func() (ClusterView, bool) { return view, up })
	fams := scrape(t, url)
	want(t, fams, 1, "graft_raft_state", "state", "follower")
	want(t, fams, 0, "graft_raft_state", "state", "leader")
	want(t, fams, 2, "graft_raft_term")
	want(t, fams, 10, "graft_raft_last_index")
	want(t, fams, 9, "graft_raft_commit_index")
	want(t, fams, 7, "graft_raft_applied_index")
	want(t, fams, 2, "graft_raft_apply_lag")
	want(t, fams, 5, "graft_world_revision")
	want(t, fams, 2, "graft_gossip_members", "state", "alive")
	want(t, fams, 1, "graft_gossip_members", "state", "dead")
	want(t, fams, 0, "graft_gossip_members", "state", "suspect")

	view.RaftState, view.Term, view.AppliedIndex = "Leader", 3, 9
	fams = scrape(t, url)
	want(t, fams, 1, "graft_raft_state", "state", "leader")
	want(t, fams, 0, "graft_raft_state", "state", "follower")
	want(t, fams, 3, "graft_raft_term")
	want(t, fams, 0, "graft_raft_apply_lag")

	up = false
	if _, ok := scrape(t, url)["graft_raft_term"]; ok {
		t.Error("raft series while the agent runs no cluster server")
	}
}

func TestGoAndProcessCollectorsAreServed(t *testing.T) {
	fams := scrape(t, serve(t, New()))
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

// go-metrics' global is process-wide: this is the package's only test that
// sets it.
func TestGoMetricsReportsReachTheRegistry(t *testing.T) {
	c := New()
	url := serve(t, c)
	if err := c.BridgeGoMetrics(); err != nil {
		t.Fatal(err)
	}
	gometrics.MeasureSince([]string{"raft", "commitTime"}, time.Now().Add(-5*time.Millisecond))
	gometrics.IncrCounter([]string{"memberlist", "msg", "alive"}, 1)
	gometrics.SetGauge([]string{"raft", "peers"}, 3)
	fams := scrape(t, url)
	want(t, fams, 1, "graft_raft_commitTime")
	want(t, fams, 1, "graft_memberlist_msg_alive")
	want(t, fams, 3, "graft_raft_peers")
}

func TestServeStopsWithItsContextAndClosesTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New().Serve(ctx, ln, nil) }()
	url := fmt.Sprintf("http://%s/metrics", ln.Addr())
	scrape(t, url)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve still running 20s after its context ended")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener still accepts after serve returned")
	}
}

// A client that opens a connection and sends nothing must not hold it
// open: the header timeout closes it.
func TestSilentClientIsDisconnected(t *testing.T) {
	url := serve(t, New())
	conn, err := net.Dial("tcp", url[len("http://"):len(url)-len("/metrics")])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(readHeaderTimeout + 20*time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server sent something to a client that sent nothing")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection was still open %v after connecting", time.Since(start))
	}
}
