package raftnode_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// benchCluster starts n nodes with the production stack (TCP on loopback,
// boltdb, file snapshots) and production timings.
func benchCluster(b *testing.B, n int) []*raftnode.Node {
	b.Helper()
	return benchClusterWith(b, n, func(*raftnode.Config) {})
}

// benchClusterWith is benchCluster with each node's configuration changed
// by tune.
func benchClusterWith(b *testing.B, n int, tune func(*raftnode.Config)) []*raftnode.Node {
	b.Helper()
	var nodes []*raftnode.Node
	for i := range n {
		cfg := raftnode.DefaultConfig()
		tune(&cfg)
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
			for !node.IsLeader() && time.Now().Before(deadline) {
				<-time.After(5 * time.Millisecond)
			}
			continue
		}
		if err := nodes[0].AddVoter(node.ID(), node.Addr(), 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	return nodes
}

// BenchmarkWrites measures acknowledged writes per second and their latency
// through the leader, with 1 and 64 concurrent writers, on 1 and 3 nodes.
// Writers on 3 nodes write through every node, so two thirds of the writes
// are forwarded.
func BenchmarkWrites(b *testing.B) { benchWrites(b, func(*raftnode.Config) {}) }

// BenchmarkWritesInMemory is BenchmarkWrites with the raft log and
// snapshots in memory: no fsync, so what is left is the CPU a write
// costs (reported per write, with the allocations), which a loaded
// machine measures more steadily than the time.
func BenchmarkWritesInMemory(b *testing.B) {
	benchWrites(b, func(c *raftnode.Config) { c.InMemory = true })
}

func benchWrites(b *testing.B, tune func(*raftnode.Config)) {
	for _, nodes := range []int{1, 3} {
		for _, writers := range []int{1, 64} {
			b.Run(fmt.Sprintf("nodes=%d/writers=%d", nodes, writers), func(b *testing.B) {
				ns := benchClusterWith(b, nodes, tune)
				value := make([]byte, 100)
				var mu sync.Mutex
				var lat []time.Duration
				ctx := context.Background()
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				b.ResetTimer()
				var wg sync.WaitGroup
				per := max(b.N/writers, 1)
				for w := range writers {
					wg.Go(func() {
						node := ns[w%len(ns)]
						local := make([]time.Duration, 0, per)
						for i := range per {
							t0 := time.Now()
							cmd := []fsm.Command{{Op: fsm.OpPut, Key: fmt.Sprintf("w%d/%d", w, i%100), Value: value}}
							if _, err := node.Apply(ctx, cmd); err != nil {
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
				slices.Sort(lat)
				if len(lat) > 0 {
					b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "writes/s")
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(lat)), "cpu-ns/write")
				}
			})
		}
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForwardedWrite is one writer's writes through a follower of
// three nodes, each forwarded to the leader over a pooled connection.
func BenchmarkForwardedWrite(b *testing.B) {
	ns := benchCluster(b, 3)
	var follower *raftnode.Node
	for _, n := range ns {
		if !n.IsLeader() {
			follower = n
			break
		}
	}
	value := make([]byte, 100)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		cmd := []fsm.Command{{Op: fsm.OpPut, Key: fmt.Sprintf("k%d", i%100), Value: value}}
		if _, err := follower.Apply(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTimings are the raft timings the leader benchmarks compare:
// production's, the heartbeat and election halved with the lease kept,
// and all three halved.
var benchTimings = []struct {
	name         string
	hb, election time.Duration
	lease        time.Duration
}{
	{"hb=1s/lease=500ms", time.Second, time.Second, 500 * time.Millisecond},
	{"hb=500ms/lease=500ms", 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond},
	{"hb=500ms/lease=250ms", 500 * time.Millisecond, 500 * time.Millisecond, 250 * time.Millisecond},
}

// BenchmarkLeaderKillToFirstWrite is the time from the leader of three
// stopping (its raft and cluster port closed at once, as a killed
// process's are) to the first write through a survivor that succeeds,
// at each of benchTimings. It reports the median of its runs as
// ms-median; ns/op counts each run's cluster start as well.
func BenchmarkLeaderKillToFirstWrite(b *testing.B) {
	for _, tm := range benchTimings {
		b.Run(tm.name, func(b *testing.B) {
			var took []time.Duration
			for range b.N {
				took = append(took, leaderKillToFirstWrite(b, func(c *raftnode.Config) {
					c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = tm.hb, tm.election, tm.lease
				}))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/float64(time.Millisecond), "ms-median")
		})
	}
}

func leaderKillToFirstWrite(b *testing.B, tune func(*raftnode.Config)) time.Duration {
	ns := benchClusterWith(b, 3, tune)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := ns[i%3].Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: "warm", Value: []byte("v")}}); err != nil {
			b.Fatal(err)
		}
	}
	var leader *raftnode.Node
	var rest []*raftnode.Node
	for _, n := range ns {
		if n.IsLeader() && leader == nil {
			leader = n
		} else {
			rest = append(rest, n)
		}
	}
	if leader == nil {
		b.Fatal("no leader")
	}
	start := time.Now()
	leader.Close()
	for {
		_, err := rest[0].Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: "after", Value: []byte("v")}})
		if err == nil {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			b.Fatalf("no write within 30s of the leader's stop: %v", err)
		}
	}
}

// BenchmarkLeaderStaysUnderWrites counts the elections in a minute of
// writes by 128 clients spread over three nodes, at each of benchTimings:
// none is wanted, the leader being alive throughout. It reports them as
// elections (each run's), with writes/s.
func BenchmarkLeaderStaysUnderWrites(b *testing.B) {
	for _, tm := range benchTimings {
		b.Run(tm.name, func(b *testing.B) {
			var elections, writes float64
			for range b.N {
				e, w := electionsUnderWrites(b, time.Minute, func(c *raftnode.Config) {
					c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = tm.hb, tm.election, tm.lease
				})
				elections, writes = elections+float64(e), writes+w
			}
			b.ReportMetric(elections/float64(b.N), "elections")
			b.ReportMetric(writes/float64(b.N), "writes/s")
		})
	}
}

// electionsUnderWrites runs 128 writers over three nodes for d and
// returns how many terms began meanwhile, and the writes per second.
func electionsUnderWrites(b *testing.B, d time.Duration, tune func(*raftnode.Config)) (uint64, float64) {
	ns := benchClusterWith(b, 3, tune)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	term := ns[0].Term()
	value := make([]byte, 256)
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := range 128 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				cmd := []fsm.Command{{Op: fsm.OpPut, Key: fmt.Sprintf("w%d/%d", w, i%100), Value: value}}
				if _, err := ns[w%3].Apply(ctx, cmd); err == nil {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	var last uint64
	for _, n := range ns {
		last = max(last, n.Term())
	}
	return last - term, float64(done.Load()) / d.Seconds()
}
