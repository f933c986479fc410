package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/bench/loadgen"
)

// graftNode is one agent of the driver's graft cluster.
type graftNode struct {
	name string
	data string
	p    *proc
}

func (n *graftNode) socket() string { return filepath.Join(n.data, "graft.sock") }

// startGraftCluster starts size agents that form one cluster together
// (one key, --bootstrap-expect size, each joining the others' fixed
// gossip ports) and waits until every one sees a leader and size voters.
func startGraftCluster(ctx context.Context, bin, dir string, size int) ([]*graftNode, error) {
	key, err := exec.CommandContext(ctx, bin, "keygen").Output()
	if err != nil {
		return nil, fmt.Errorf("graft keygen: %w", err)
	}
	ports, err := freePorts(size)
	if err != nil {
		return nil, err
	}
	env := []string{"GRAFT_TOKEN=" + strings.TrimSpace(string(key))}
	var nodes []*graftNode
	for i := range size {
		n := &graftNode{name: fmt.Sprintf("n%d", i), data: filepath.Join(dir, fmt.Sprintf("n%d", i))}
		args := []string{"run", "--data-dir", n.data, "--hostname", n.name, "--log-format", "json", "--no-discover",
			"--cluster-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:" + strconv.Itoa(ports[i]),
			"--bootstrap-expect", strconv.Itoa(size)}
		for j, port := range ports {
			if j != i {
				args = append(args, "--join", "127.0.0.1:"+strconv.Itoa(port))
			}
		}
		if n.p, err = startProc(ctx, "graft "+n.name, bin, args, env); err != nil {
			stopGraft(nodes)
			return nil, err
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := waitGraftFormed(ctx, n, size); err != nil {
			stopGraft(nodes)
			return nil, err
		}
	}
	return nodes, nil
}

// waitGraftFormed polls n's status until it knows a leader and voters
// voters.
func waitGraftFormed(ctx context.Context, n *graftNode, voters int) error {
	c, err := api.NewClient(n.socket())
	if err != nil {
		return err
	}
	defer c.Close()
	err = poll(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
		if n.p.exited() {
			return false, errors.New("the agent exited")
		}
		st, err := c.Status(ctx)
		if err != nil {
			return false, err
		}
		got := 0
		for _, s := range st.Servers {
			if s.Suffrage == "voter" {
				got++
			}
		}
		return st.Leader != "" && got == voters, fmt.Errorf("leader %q, %d voters", st.Leader, got)
	})
	if err != nil {
		return n.p.failure("forming the cluster", err)
	}
	return nil
}

// stopGraft kills the agents: the figures are taken, nothing needs a
// graceful leave.
func stopGraft(nodes []*graftNode) {
	for _, n := range nodes {
		n.p.kill()
	}
}

// graftClients opens one API client per simulated client, spread over
// the nodes in turn.
func graftClients(nodes []*graftNode, count int) ([]*api.Client, func(), error) {
	cs := make([]*api.Client, 0, count)
	closeAll := func() {
		for _, c := range cs {
			c.Close()
		}
	}
	for i := range count {
		c, err := api.NewClient(nodes[i%len(nodes)].socket())
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	return cs, closeAll, nil
}

// graftPuts runs the write load: clients writing 256-byte values.
func graftPuts(ctx context.Context, nodes []*graftNode, clients int, dur time.Duration) (loadgen.Result, error) {
	cs, closeAll, err := graftClients(nodes, clients)
	if err != nil {
		return loadgen.Result{}, err
	}
	defer closeAll()
	value := []byte(strings.Repeat("v", valueSize))
	return loadgen.Run(ctx, clients, dur, func(ctx context.Context, c int, key string) error {
		_, err := cs[c].Put(ctx, key, value)
		return err
	})
}

// graftLinReads runs the linearizable read load on one key.
func graftLinReads(ctx context.Context, nodes []*graftNode, clients int, dur time.Duration) (loadgen.Result, error) {
	cs, closeAll, err := graftClients(nodes, clients)
	if err != nil {
		return loadgen.Result{}, err
	}
	defer closeAll()
	if _, err := cs[0].Put(ctx, readKey, []byte(strings.Repeat("r", valueSize))); err != nil {
		return loadgen.Result{}, err
	}
	return loadgen.Run(ctx, clients, dur, func(ctx context.Context, c int, _ string) error {
		_, ok, err := cs[c].Get(ctx, readKey, api.Linearizable())
		if err == nil && !ok {
			err = errors.New("the key written before is missing")
		}
		return err
	})
}

// graftLeader is the number of the node that leads, as node 0 sees it.
func graftLeader(ctx context.Context, nodes []*graftNode) (int, error) {
	c, err := api.NewClient(nodes[0].socket())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	for i, n := range nodes {
		if n.name == st.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no node is the leader %q", st.Leader)
}

// graftLeaderKill kills the leader with SIGKILL and times it until a
// write through another node succeeds.
func graftLeaderKill(ctx context.Context, nodes []*graftNode) (time.Duration, error) {
	l, err := graftLeader(ctx, nodes)
	if err != nil {
		return 0, err
	}
	leader, other := nodes[l], nodes[(l+1)%len(nodes)]
	oc, err := api.NewClient(other.socket())
	if err != nil {
		return 0, err
	}
	defer oc.Close()
	start := time.Now()
	leader.p.kill()
	return loadgen.FirstWrite(ctx, start, func(ctx context.Context) error {
		_, err := oc.Put(ctx, "leaderkill", []byte("v"))
		return err
	}, nil)
}

// errExited is a server process that exited while the driver waited on it.
var errExited = errors.New("the process exited")

// isExited reports whether err says the process exited: no later try can
// succeed.
func isExited(err error) bool { return errors.Is(err, errExited) }

// graftStartToWrite starts one agent on a fresh data dir and times it
// until a write through its API succeeds.
func graftStartToWrite(ctx context.Context, bin, dir string) (time.Duration, error) {
	data := filepath.Join(dir, "solo")
	p, err := startProc(ctx, "graft solo", bin, graftAgentArgs("--data-dir", data, "--hostname", "solo"), nil)
	if err != nil {
		return 0, err
	}
	defer p.kill()
	c, err := api.NewClient(filepath.Join(data, "graft.sock"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	took, err := loadgen.FirstWrite(ctx, p.start, func(ctx context.Context) error {
		if p.exited() {
			return errExited
		}
		_, err := c.Put(ctx, "first", []byte("v"))
		return err
	}, isExited)
	if err != nil {
		return 0, p.failure("start to first write", err)
	}
	return took, os.RemoveAll(data)
}
