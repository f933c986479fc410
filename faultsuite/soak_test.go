package faultsuite

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The soak's tolerances, between the medians of the first and the last
// quarter of its schedules, measured between schedules, outside the
// bubbles, after a forced GC. Nothing of a schedule should be left then:
// every goroutine it started has ended (synctest.Test waits for them),
// and the live heap is the test binary's own, about 0.3 MiB, growing only
// by testing's record of each subtest's name and the soak's own samples
// (measured: about 250 bytes a schedule). The heap's limit is 256 KiB for
// noise (the samples of a run vary by less than 0.1 MiB) plus 1 KiB a
// schedule, four times that growth: it catches a leak averaging more than
// 3.5 KiB a schedule in a 3-minute run (about 160 schedules), 1.5 KiB in
// runs of thousands, such as a schedule's records (100 KiB and more) kept
// once in twenty schedules, or a cluster (MiBs) once in hundreds. The
// goroutines between schedules were 2 at every sample; one more is
// allowed, for a subtest's goroutine that has signalled its end but not
// yet exited.
const (
	heapSlack       = 256 << 10 // bytes
	heapPerSchedule = 1 << 10   // bytes
	goroutineGrowth = 1
)

// soakInterval is how often the soak prints where it is.
const soakInterval = 30 * time.Second

// soakMargin is the time the last schedule may take once the soak's time
// is up (a schedule takes about a second, minutes on a loaded machine):
// go test's -timeout must exceed GRAFT_SOAK by at least this much
// (`make soak` gives it 15 minutes more).
const soakMargin = 5 * time.Minute

// tally counts what one or more schedules gave the checkers.
type tally struct {
	ops, holds, deliveries int
}

func (a tally) add(b tally) tally {
	return tally{a.ops + b.ops, a.holds + b.holds, a.deliveries + b.deliveries}
}

// tally counts the recorded key operations, semaphore holds and watch
// deliveries.
func (r *recorder) tally() tally {
	c := r.Counts()
	return tally{ops: c.Ops, holds: c.Holds, deliveries: c.Deliveries}
}

// sample is the process between two schedules.
type sample struct {
	heap       uint64 // live heap after a forced GC, bytes
	goroutines int
}

// measure collects garbage (twice, so that what finalizers free goes
// too) and samples the heap and the goroutines.
func measure() sample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sample{heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
}

// soakTime returns GRAFT_SOAK's duration, zero if it is unset.
func soakTime(t *testing.T) time.Duration {
	s := os.Getenv("GRAFT_SOAK")
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("GRAFT_SOAK=%q: want how long to soak, a positive duration such as 10m", s)
	}
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < d+soakMargin {
		t.Fatalf("GRAFT_SOAK=%v: go test's -timeout must exceed it by at least %v (make soak sees to it)", d, soakMargin)
	}
	return d
}

// Random fault schedules back to back for GRAFT_SOAK (`make soak`; unset,
// the test does not run): every schedule keeps every guarantee, and
// neither the live heap nor the goroutines between schedules grow from
// the first quarter of the run to the last.
func TestSoakKeepsEveryGuaranteeWithoutGrowth(t *testing.T) {
	d := soakTime(t)
	if d == 0 {
		t.Skip("GRAFT_SOAK is unset: the soak runs under make soak")
	}
	fmt.Printf("soak: fault schedules for %v, a line every %v\n", d, soakInterval)
	var (
		total   tally
		samples []sample
		start   = time.Now()
		printed = start
	)
	for time.Since(start) < d {
		seed := randomSeed()
		var got tally
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { got = runSchedule(t, seed) })
		})
		if !ok {
			fmt.Printf("soak: VIOLATION in schedule %d after %v (its log follows), seed %d: "+
				"GRAFT_FAULT_SEED=%d go test -race -run TestFaultSchedules ./faultsuite/ replays it\n",
				len(samples)+1, time.Since(start).Round(time.Second), seed, seed)
			t.FailNow()
		}
		total = total.add(got)
		samples = append(samples, measure())
		if time.Since(printed) >= soakInterval {
			printed = time.Now()
			fmt.Println(progress(time.Since(start), len(samples), total, samples[len(samples)-1]))
		}
	}
	fmt.Println(progress(time.Since(start), len(samples), total, samples[len(samples)-1]))
	verdict, err := judgeGrowth(samples)
	fmt.Printf("soak: %s\n", verdict)
	if err != nil {
		t.Fatal(err)
	}
}

func progress(at time.Duration, n int, tl tally, s sample) string {
	return fmt.Sprintf("soak %v: %d schedules, checked %d key operations, %d semaphore holds, %d watch deliveries, 0 violations; "+
		"live heap %.1f MiB, %d goroutines", at.Round(time.Second), n, tl.ops, tl.holds, tl.deliveries, mib(s.heap), s.goroutines)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// judgeGrowth compares the medians of the first and the last quarter of
// the samples: it describes them, and errs if either grew past its
// tolerance, or if there are too few samples to have quarters.
func judgeGrowth(samples []sample) (string, error) {
	q := len(samples) / 4
	if q == 0 {
		return fmt.Sprintf("%d schedules, too few to compare quarters", len(samples)),
			fmt.Errorf("only %d schedules ran: growth needs at least 4; soak longer", len(samples))
	}
	first, last := samples[:q], samples[len(samples)-q:]
	h0, h1 := median(first, func(s sample) uint64 { return s.heap }), median(last, func(s sample) uint64 { return s.heap })
	g0, g1 := median(first, func(s sample) int { return s.goroutines }), median(last, func(s sample) int { return s.goroutines })
	heapLimit := h0 + heapSlack + heapPerSchedule*uint64(len(samples))
	verdict := fmt.Sprintf("%d schedules; medians of the first and last %d: live heap %.1f -> %.1f MiB (%+.1f%%, limit %.1f MiB), "+
		"goroutines %d -> %d (limit %d)", len(samples), q, mib(h0), mib(h1), 100*(float64(h1)/float64(h0)-1), mib(heapLimit),
		g0, g1, g0+goroutineGrowth)
	var errs []error
	if h1 > heapLimit {
		errs = append(errs, fmt.Errorf("the live heap grew from %.1f to %.1f MiB, past %.1f", mib(h0), mib(h1), mib(heapLimit)))
	}
	if g1 > g0+goroutineGrowth {
		errs = append(errs, fmt.Errorf("the goroutines grew from %d to %d, past %d", g0, g1, g0+goroutineGrowth))
	}
	return verdict, errors.Join(errs...)
}

// median returns the median of f over samples (the upper one of an even
// count).
func median[T int | uint64](samples []sample, f func(sample) T) T {
	vs := make([]T, len(samples))
	for i, s := range samples {
		vs[i] = f(s)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}
