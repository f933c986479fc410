package main

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// tryScrape gets url and parses it with Prometheus' text parser.
func tryScrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// gaugeOf is the value of the gauge, counter or untyped series name whose
// labels include those given (name, value pairs), or of the sample count
// of a summary or histogram; false if there is none.
func gaugeOf(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount()), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// A one-node agent run with --metrics 127.0.0.1:0 logs the address it
// bound and serves, there, raft's state (leader), its term, its indexes,
// the gossip ring (one alive member), the converged state, the engine's
// CheckApply calls (the file written once) and its resources by state, the Go and
// process collectors, and raft's and memberlist's own go-metrics (raft's
// commitTime and apply, memberlist's gossip and alive messages) bridged
// into the same registry.
func TestMetricsEndpointServesClusterAndBridgedRaftSeries(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`graph: m
resources:
  file:
  - name: f
    path: %s/out
    content: "x\n"
    state: exists
`, dir))
	a := startAgent(t, "run", "--data-dir", filepath.Join(dir, "data"), "--hostname", "h1", "--log-format", "json",
		"--converged-timeout", "0", "--metrics", "127.0.0.1:0", "yaml", g)
	a.waitLog(20*time.Second, `"metrics listening"`)
	addr := logAttr(t, a.output(), "metrics listening", "address")
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("metrics listening at %q, want 127.0.0.1 and the port bound", addr)
	}
	url := "http://" + addr + "/metrics"

	var fams map[string]*dto.MetricFamily
	waitUntil(t, "leader, converged and raft's commit times in the metrics", func() (bool, error) {
		var err error
		if fams, err = tryScrape(url); err != nil {
			return false, err
		}
		leader, _ := gaugeOf(fams, "graft_raft_state", "state", "leader")
		converged, _ := gaugeOf(fams, "graft_converged")
		commits, _ := gaugeOf(fams, "graft_raft_commitTime")
		applies, _ := gaugeOf(fams, "graft_raft_apply")
		gossips, _ := gaugeOf(fams, "graft_memberlist_gossip")
		if leader == 1 && converged == 1 && commits > 0 && applies > 0 && gossips > 0 {
			return true, nil
		}
		return false, fmt.Errorf("leader %v, converged %v, raft commitTime samples %v, raft applies %v, memberlist gossip samples %v",
			leader, converged, commits, applies, gossips)
	})
	for _, c := range []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"graft_raft_state", []string{"state", "follower"}, func(v float64) bool { return v == 0 }, "0"},
		{"graft_raft_term", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"graft_raft_commit_index", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"graft_raft_applied_index", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"graft_raft_apply_lag", nil, func(v float64) bool { return v >= 0 }, ">= 0"},
		{"graft_world_revision", nil, func(v float64) bool { return v >= 0 }, ">= 0"},
		{"graft_gossip_members", []string{"state", "alive"}, func(v float64) bool { return v == 1 }, "1"},
		{"graft_gossip_members", []string{"state", "dead"}, func(v float64) bool { return v == 0 }, "0"},
		{"graft_memberlist_msg_alive", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"graft_checkapply_total", []string{"kind", "file", "result", "changed"}, func(v float64) bool { return v == 1 }, "1"},
		{"graft_checkapply_duration_seconds", []string{"kind", "file"}, func(v float64) bool { return v >= 1 }, ">= 1 sample"},
		{"graft_resources", []string{"state", "ok"}, func(v float64) bool { return v == 1 }, "1"},
		{"graft_graph_swaps_total", nil, func(v float64) bool { return v == 1 }, "1"},
		{"graft_resources", []string{"state", "failed"}, func(v float64) bool { return v == 0 }, "0"},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"process_resident_memory_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
	} {
		v, ok := gaugeOf(fams, c.name, c.labels...)
		if !ok {
			t.Errorf("no series %s%v", c.name, c.labels)
		} else if !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	a.stop()
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the metrics port still accepts after the agent stopped")
	}
}

// A --metrics that is not HOST:PORT is a usage error naming the flag; a
// port another program holds fails the run before it starts, naming the
// flag.
func TestMetricsBadAddressIsAnErrorNamingTheFlag(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:99999", "127.0.0.1:http-ish"} {
		code, _, stderr := graft(t, "run", "--tmp-prefix", "--metrics", addr)
		if code != exitUsage || !strings.Contains(stderr, "--metrics") {
			t.Errorf("--metrics %q: exit %d, stderr %q; want %d and the flag named", addr, code, stderr, exitUsage)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--metrics", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "--metrics "+ln.Addr().String()) || strings.Contains(stderr, "cluster server started") {
		t.Errorf("--metrics on a port in use: exit %d, stderr %q; want 1 and the flag named", code, stderr)
	}
}
