package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

// The time from starting `graft run` (the real program: this test binary
// run as graft) to the first write through its local API that succeeds,
// on a fresh data dir and on a data dir a node alone in its cluster
// restarts on. Each reports the median of its runs as ms-median (ns/op is
// their mean); run them without -race for figures:
//
//	go test -run '^$' -bench ToFirstWrite -benchtime 5x ./cmd/graft/

func BenchmarkStartToFirstWrite(b *testing.B) {
	var took []time.Duration
	for range b.N {
		data := filepath.Join(b.TempDir(), "d")
		took = append(took, startAndWrite(b, data))
	}
	reportMedian(b, took)
}

func BenchmarkRestartAloneToFirstWrite(b *testing.B) {
	var took []time.Duration
	for range b.N {
		b.StopTimer()
		data := filepath.Join(b.TempDir(), "d")
		startAndWrite(b, data)
		b.StartTimer()
		took = append(took, startAndWrite(b, data))
	}
	reportMedian(b, took)
}

func reportMedian(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/float64(time.Millisecond), "ms-median")
}

// startAndWrite starts graft run on data, times it until a put through
// the API succeeds, and stops it with SIGTERM.
func startAndWrite(b *testing.B, data string) time.Duration {
	b.Helper()
	cmd := exec.Command(os.Args[0], testClusterAddr([]string{"run", "--data-dir", data, "--hostname", "h1"})...)
	cmd.Env = append(os.Environ(), "GRAFT_TEST_BINARY=1", "GORACE=atexit_sleep_ms=0")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil {
				b.Errorf("graft run exited with %v after SIGTERM", waitErr)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			b.Error("graft run still running 20s after SIGTERM")
		}
	}()
	client, err := api.NewClient(filepath.Join(data, apiSocket))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := client.Put(ctx, "bench", []byte("v"))
		if err == nil {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			b.Fatalf("no write succeeded within 30s: %v", err)
		}
		select {
		case <-exited:
			b.Fatalf("graft run exited (%v) before a write succeeded", waitErr)
		case <-time.After(2 * time.Millisecond): // poll: the socket is not there yet, or no leader
		}
	}
}
