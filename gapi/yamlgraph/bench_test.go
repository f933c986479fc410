package yamlgraph_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
)

// chainYAML is the bench driver's chain of n noops.
func chainYAML(n int) []byte {
	var b bytes.Buffer
	b.WriteString("graph: bench\nresources:\n  noop:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: n%d\n", i)
	}
	b.WriteString("edges:\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "- name: e%d\n  from: {kind: noop, name: n%d}\n  to: {kind: noop, name: n%d}\n", i-1, i-1, i)
	}
	return b.Bytes()
}

// BenchmarkParseChain measures loading and validating a chain of noops:
// the part of a start or a swap before the engine.
func BenchmarkParseChain(b *testing.B) {
	reg := resources.NewRegistry(resources.Deps{})
	for _, n := range []int{10_000, 100_000} {
		data := chainYAML(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := yamlgraph.ParseWith("chain.yaml", data, reg, yamlgraph.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/resource")
		})
	}
}
