package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// BenchmarkAPIWrites measures puts through the local API of the leader of
// three nodes on the production stack (TCP on loopback, boltdb, file
// snapshots, production timings): writes/s and latency at 1, 16 and 128
// concurrent writers sharing one api.Client over the unix socket, as a
// program on the host would. Keys are 8 bytes, values 256, as in issue
// 15's table. For figures, run it without -race and alternate before and
// after a change:
//
//	go test -run '^$' -bench APIWrites -benchtime 3s -count 5 ./api/server/
func BenchmarkAPIWrites(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("nodes=3/writers=%d", writers), func(b *testing.B) {
			client, leader := benchAPI(b, 3)
			benchWrites(b, writers, client.Put, leader)
		})
	}
}

// BenchmarkWorldWrites is BenchmarkAPIWrites without the API: the same
// writers call the leader's World directly, which shows what the HTTP hop
// costs.
func BenchmarkWorldWrites(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("nodes=3/writers=%d", writers), func(b *testing.B) {
			w, leader := benchWorld(b, 3)
			benchWrites(b, writers, w.Put, leader)
		})
	}
}

// benchWrites runs writers goroutines that put b.N keys in all through
// put, and reports writes/s, latency and writes per raft log entry.
func benchWrites(b *testing.B, writers int, put func(context.Context, string, []byte) (uint64, error), leader *raftnode.Node) {
	value := make([]byte, 256)
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	per := max(b.N/writers, 1)
	first := leader.LastIndex()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			local := make([]time.Duration, 0, per)
			for i := range per {
				t0 := time.Now()
				if _, err := put(ctx, fmt.Sprintf("%03d/%04d", w, i%1000), value); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	reportLatency(b, lat)
	if len(lat) > 0 {
		// The whole process's: the three nodes, the server and the client.
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/write")
	}
	if entries := leader.LastIndex() - first; entries > 0 {
		b.ReportMetric(float64(len(lat))/float64(entries), "writes/entry")
	}
}

// cpuTime is the CPU time the process has used, user and system: on a
// loaded machine a steadier figure of a change than the time taken.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportLatency reports writes/s, p50 and p99 of the latencies.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// benchAPI starts n raft nodes on the production stack, and an API server
// on a unix socket in front of the leader's World; it returns a client
// of it, and the leader. Everything stops when the benchmark ends.
func benchAPI(b *testing.B, n int) (*api.Client, *raftnode.Node) {
	b.Helper()
	w, leader := benchWorld(b, n)
	srv, err := NewServer(Config{Store: w, Status: leader.Status, Node: leader, Host: "n0"})
	if err != nil {
		b.Fatal(err)
	}
	return serveBench(b, srv), leader
}

// serveBench serves srv on a unix socket until the benchmark ends, and
// returns a client of it.
func serveBench(b *testing.B, srv *Server) *api.Client {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "graft.sock")
	ln, err := api.ListenUnix(sock)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, []net.Listener{ln}...) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	client, err := api.NewClient(sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return client
}

// benchWorld starts n raft nodes on the production stack and returns the
// World of the leader, and the leader.
func benchWorld(b *testing.B, n int) (*world.World, *raftnode.Node) {
	b.Helper()
	var nodes []*raftnode.Node
	for i := range n {
		cfg := raftnode.DefaultConfig()
		cfg.BindAddr = "127.0.0.1:0"
		cfg.NodeID, cfg.DataDir, cfg.Bootstrap = fmt.Sprintf("n%d", i), b.TempDir(), i == 0
		node, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { node.Close() })
		nodes = append(nodes, node)
		if i == 0 {
			deadline := time.Now().Add(20 * time.Second)
			for !node.IsLeader() {
				if time.Now().After(deadline) {
					b.Fatal("no leader within 20s")
				}
				<-time.After(5 * time.Millisecond)
			}
			continue
		}
		if err := nodes[0].AddVoter(node.ID(), node.Addr(), 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	leader := nodes[0]
	w, err := world.New(leader, "n0", nil)
	if err != nil {
		b.Fatal(err)
	}
	return w, leader
}

// quickStore answers every put at once: BenchmarkAPIRoundTrip measures
// the API alone (client, protocol, server), without raft behind it.
type quickStore struct {
	Store
	rev atomic.Uint64
}

func (q *quickStore) Put(context.Context, string, []byte) (uint64, error) { return q.rev.Add(1), nil }

// BenchmarkAPIRoundTrip is puts through the local API to a store that
// answers at once, by 1, 16 and 128 writers sharing one api.Client on the
// unix socket: what the API adds to a write.
func BenchmarkAPIRoundTrip(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			srv, err := NewServer(Config{Store: &quickStore{}, Status: func() raftnode.Status { return raftnode.Status{} }})
			if err != nil {
				b.Fatal(err)
			}
			client := serveBench(b, srv)
			value := make([]byte, 256)
			ctx := context.Background()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := max(b.N/writers, 1)
			for w := range writers {
				wg.Go(func() {
					for i := range per {
						if _, err := client.Put(ctx, fmt.Sprintf("%03d/%04d", w, i%1000), value); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(per*writers), "cpu-ns/op")
		})
	}
}
