package fsm

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkApply applies entries of puts of 100-byte values, each a real
// change, to a key space of 1024 entries' worth of keys. An op is one entry.
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			const ring = 1024
			var entries [2][ring][]byte // two values per key, alternating
			for v := range entries {
				value := bytes.Repeat([]byte{byte('a' + v)}, 100)
				for i := range entries[v] {
					cmds := make([]Command, batch)
					for j := range cmds {
						cmds[j] = Command{Op: OpPut, Key: fmt.Sprintf("bench/%08d", i*batch+j), Value: value}
					}
					entries[v][i] = mustEncode(b, cmds...)
				}
			}
			f := New(Options{})
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := f.Apply(uint64(i+1), entries[(i/ring)%2][i%ring]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cmds := float64(b.N * batch)
			b.ReportMetric(cmds/b.Elapsed().Seconds(), "cmds/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/cmds, "ns/cmd")
		})
	}
}
