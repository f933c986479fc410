// Command bench is graft's benchmark driver (`make bench`): it runs the
// real graft binary on generated graphs and as a three-node cluster on
// loopback, and, given peer binaries (ETCD_BIN, MGMT_BIN), the same
// workloads on them in the same run, alternating round by round. It prints
// one table, every figure the median of its rounds with min and max, and
// writes the figures and the machine they ran on to a JSON file.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// valueSize and readKey: the World loads write 8-byte keys and 256-byte
// values, and read readKey.
const (
	valueSize = 256
	readKey   = "readkey0"
)

// config is what the driver runs.
type config struct {
	graftBin, etcdBin, mgmtBin string
	helperSrc                  string // the etcd helper's module
	out                        string // the JSON file
	rounds                     int
	quick                      bool
	shapes                     []string
	noops, files               []int
	bigChain                   int // a chain this long too (0: none)
	swapNoops, swaps, drifts   int
	clients                    []int // the loads of several clients, spread over the nodes (one client loads the leader, then a follower)
	readClients                int
	loadDur                    time.Duration
	engine, world              bool
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.graftBin, "graft", "bin/graft", "the graft binary")
	fs.StringVar(&c.etcdBin, "etcd", os.Getenv("ETCD_BIN"), "an etcd binary to run the World workloads on too (default $ETCD_BIN)")
	fs.StringVar(&c.mgmtBin, "mgmt", os.Getenv("MGMT_BIN"), "an mgmt binary to run the engine workloads on too (default $MGMT_BIN)")
	fs.StringVar(&c.helperSrc, "etcdload", "bench/etcdload", "the etcd helper's module directory")
	fs.StringVar(&c.out, "out", "bench/results/latest.json", "where to write the JSON results")
	fs.IntVar(&c.rounds, "rounds", 0, "rounds: every figure is the median of this many runs per system (default 3, 1 with -quick)")
	fs.BoolVar(&c.quick, "quick", false, "a smoke run: one round of small workloads (seconds, not minutes)")
	fs.IntVar(&c.bigChain, "big-chain", 100000, "also run a chain of this many noops (0: none); chains, fans and DAGs run at 1k and 10k")
	only := fs.String("only", "", "engine or world: run only that half")
	loadDur := fs.Duration("load-duration", 0, "how long each World load runs (default 3s, 300ms with -quick)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch *only {
	case "":
		c.engine, c.world = true, true
	case "engine", "world":
		c.engine, c.world = *only == "engine", *only == "world"
	default:
		return c, fmt.Errorf("-only %q: want engine or world", *only)
	}
	c.shapes = []string{"chain", "fan", "dag"}
	c.noops, c.files, c.swapNoops, c.swaps, c.drifts = []int{1000, 10000}, []int{1000}, 10000, 5, 5
	c.clients, c.readClients, c.loadDur = []int{16, 128, 1000}, 16, 3*time.Second
	if c.rounds == 0 {
		c.rounds = 3
		if c.quick {
			c.rounds = 1
		}
	}
	if c.quick {
		c.noops, c.files, c.swapNoops, c.swaps, c.drifts, c.bigChain = []int{100}, []int{20}, 100, 2, 2, 0
		c.clients, c.readClients, c.loadDur = []int{16}, 4, 300*time.Millisecond
	}
	if *loadDur > 0 {
		c.loadDur = *loadDur
	}
	if c.rounds < 1 {
		return c, fmt.Errorf("-rounds %d: want at least 1", c.rounds)
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// report is the JSON file.
type report struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	Rounds  int       `json:"rounds"`
	Quick   bool      `json:"quick"`
	Seconds float64   `json:"seconds"`
	Figures []*Figure `json:"figures"`
}

// run runs the benchmark and prints its table on stdout; progress goes to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	work, err := os.MkdirTemp("", "graft-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{c: c, log: log, work: work, res: newResults()}
	if c.etcdBin != "" && c.world {
		if b.helper, err = buildHelper(ctx, c.helperSrc, work); err != nil {
			return err
		}
	}
	start := time.Now()
	for r := range c.rounds {
		log.Info("round", "round", r+1, "of", c.rounds)
		if err := b.round(ctx, r); err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
	}
	b.res.finish()
	rep := report{Date: start.UTC().Truncate(time.Second), Machine: machine(), Rounds: c.rounds, Quick: c.quick,
		Seconds: time.Since(start).Seconds(), Figures: b.res.figs}
	fmt.Fprintf(stdout, "graft bench, %s, %d rounds, %.0f s\nmachine: %s\n\n",
		rep.Date.Format(time.DateOnly), c.rounds, rep.Seconds, rep.Machine)
	if err := b.res.table(stdout); err != nil {
		return err
	}
	return writeReport(stdout, c.out, rep)
}

// writeReport writes rep to path and says where.
func writeReport(stdout io.Writer, path string, rep report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nresults: %s\n", path)
	return nil
}

// bench is one run of the driver.
type bench struct {
	c      config
	log    *slog.Logger
	work   string // the run's scratch directory
	helper string // the etcd helper binary, if etcd runs
	res    *results
}

// order is the systems of round r, graft first in even rounds and the
// peer first in odd ones.
func order(r int, peer string) []string {
	if peer == "" {
		return []string{"graft"}
	}
	if r%2 == 1 {
		return []string{peer, "graft"}
	}
	return []string{"graft", peer}
}

// scratch makes a fresh directory for one workload.
func (b *bench) scratch(parts ...string) (string, error) {
	dir := filepath.Join(append([]string{b.work}, parts...)...)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func (b *bench) round(ctx context.Context, r int) error {
	if b.c.engine {
		if err := b.engineRound(ctx, r); err != nil {
			return err
		}
	}
	if b.c.world {
		return b.worldRound(ctx, r)
	}
	return nil
}

// label is "1 client" or "N clients".
func label(n int) string {
	if n == 1 {
		return "1 client"
	}
	return strconv.Itoa(n) + " clients"
}

// joinName joins a figure's name parts.
func joinName(parts ...string) string { return strings.Join(parts, ", ") }
