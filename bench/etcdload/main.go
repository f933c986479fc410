// Command etcdload is the etcd side of graft's benchmark driver (../):
// the same loads as the driver runs on graft, through etcd's own Go
// client (gRPC). It is a module of its own so that graft's go.mod does not
// take in etcd's client. The driver builds and runs it; each subcommand
// prints one JSON object on stdout.
//
//	etcdload load -endpoints URL,... -clients N -duration D -op put|lget
//	etcdload killwrite -pid PID -endpoints URL,...   SIGKILL PID, time to the first put through the endpoints
//	etcdload startwrite -etcd BIN -dir DIR           start a one-member etcd, time to its first put
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/graftcm/graft/bench/loadgen"
)

const valueSize = 256 // as the driver's

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("etcdload: want a subcommand: load, killwrite or startwrite")
	}
	var out any
	var err error
	switch os.Args[1] {
	case "load":
		out, err = load(os.Args[2:])
	case "killwrite":
		out, err = killWrite(os.Args[2:])
	case "startwrite":
		out, err = startWrite(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("etcdload %s: %v", os.Args[1], err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}

// newClient is a client of endpoints, logging nothing.
func newClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func load(args []string) (loadgen.Result, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "", "comma-separated client URLs")
	clients := fs.Int("clients", 1, "concurrent clients, spread over the endpoints in turn, one connection each")
	dur := fs.Duration("duration", 3*time.Second, "how long to run")
	op := fs.String("op", "put", "put (256-byte values) or lget (linearizable reads of one key)")
	if err := fs.Parse(args); err != nil {
		return loadgen.Result{}, err
	}
	eps := strings.Split(*endpoints, ",")
	cs := make([]*clientv3.Client, 0, *clients)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := range *clients {
		c, err := newClient([]string{eps[i%len(eps)]})
		if err != nil {
			return loadgen.Result{}, err
		}
		cs = append(cs, c)
	}
	ctx := context.Background()
	value := strings.Repeat("v", valueSize)
	switch *op {
	case "put":
		return loadgen.Run(ctx, *clients, *dur, func(ctx context.Context, c int, key string) error {
			_, err := cs[c].Put(ctx, key, value)
			return err
		})
	case "lget":
		if _, err := cs[0].Put(ctx, "readkey0", strings.Repeat("r", valueSize)); err != nil {
			return loadgen.Result{}, err
		}
		return loadgen.Run(ctx, *clients, *dur, func(ctx context.Context, c int, _ string) error {
			r, err := cs[c].Get(ctx, "readkey0") // linearizable unless WithSerializable
			if err == nil && len(r.Kvs) != 1 {
				err = errors.New("the key written before is missing")
			}
			return err
		})
	}
	return loadgen.Result{}, fmt.Errorf("-op %q: want put or lget", *op)
}

// timing is a one-off measurement.
type timing struct {
	MS float64 `json:"ms"`
}

func killWrite(args []string) (timing, error) {
	fs := flag.NewFlagSet("killwrite", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "the leader's process")
	endpoints := fs.String("endpoints", "", "comma-separated client URLs of the other members")
	if err := fs.Parse(args); err != nil {
		return timing{}, err
	}
	c, err := newClient(strings.Split(*endpoints, ","))
	if err != nil {
		return timing{}, err
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Put(ctx, "leaderkill", "before"); err != nil { // connected before the kill
		return timing{}, err
	}
	start := time.Now()
	if err := syscall.Kill(*pid, syscall.SIGKILL); err != nil {
		return timing{}, fmt.Errorf("killing the leader: %w", err)
	}
	return firstWrite(ctx, start, func(ctx context.Context) error {
		_, err := c.Put(ctx, "leaderkill", "v")
		return err
	})
}

func startWrite(args []string) (timing, error) {
	fs := flag.NewFlagSet("startwrite", flag.ContinueOnError)
	bin := fs.String("etcd", "", "the etcd binary")
	dir := fs.String("dir", "", "a fresh data dir")
	if err := fs.Parse(args); err != nil {
		return timing{}, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return timing{}, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cmd := exec.Command(*bin, "--name", "solo", "--data-dir", *dir, "--log-level", "error",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "solo="+peer, "--initial-cluster-state", "new")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return timing{}, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// gRPC waits a second before it dials again after a refused dial: a
	// client made before etcd listens would time the backoff, not etcd.
	// So the port is polled first, then the client made.
	addr := strings.TrimPrefix(client, "http://")
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Since(start) > time.Minute {
			return timing{}, fmt.Errorf("etcd never listened on %s: %w", addr, err)
		}
		loadgen.Pause(context.Background(), time.Millisecond)
	}
	c, err := newClient([]string{client})
	if err != nil {
		return timing{}, err
	}
	defer c.Close()
	return firstWrite(context.Background(), start, func(ctx context.Context) error {
		_, err := c.Put(ctx, "first", "v")
		return err
	})
}

// firstWrite is loadgen.FirstWrite as a timing.
func firstWrite(ctx context.Context, start time.Time, write func(context.Context) error) (timing, error) {
	took, err := loadgen.FirstWrite(ctx, start, write, nil)
	if err != nil {
		return timing{}, err
	}
	return timing{MS: loadgen.MS(took)}, nil
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
