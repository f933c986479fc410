package metrics

import (
	"fmt"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprometheus "github.com/hashicorp/go-metrics/compat/prometheus"
)

// BridgeGoMetrics makes the collector's registry receive what raft and
// memberlist report through go-metrics, under the prefix graft_ (raft's
// commitTime becomes graft_raft_commitTime, a summary in milliseconds).
//
// raft and memberlist report to go-metrics' process-wide global, which
// cannot be set per agent: BridgeGoMetrics replaces it, so a process should
// call it once, for its one agent, and the agent whose collector it last
// bridged receives every go-metrics series of the process. Series are kept
// once seen (no expiry), as Prometheus expects of counters. go-metrics'
// own runtime sampling is off: the Go collector covers it.
func (c *Collector) BridgeGoMetrics() error {
	sink, err := gmprometheus.NewPrometheusSinkFrom(gmprometheus.PrometheusOpts{
		Name:       namespace + "_gometrics_bridge",
		Registerer: c.reg,
	})
	if err != nil {
		return fmt.Errorf("bridging go-metrics: %w", err)
	}
	cfg := gometrics.DefaultConfig(namespace)
	cfg.EnableHostname = false       // the host is the scrape target's label
	cfg.EnableRuntimeMetrics = false // no goroutine of its own: the Go collector reports the runtime
	if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
		return fmt.Errorf("bridging go-metrics: %w", err)
	}
	return nil
}
