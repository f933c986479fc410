package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/raft"
	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

const (
	// apiSocket is the local API's unix socket, in the data dir.
	apiSocket = "graft.sock"
	// nodeIDFile records, in the data dir, the raft node ID its state
	// belongs to.
	nodeIDFile = "node-id"
	// defaultClusterAddr is the cluster port's default address.
	defaultClusterAddr = "127.0.0.1:7947"
)

// clusterFlags are run's flags for the cluster node and the local API.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cluster-addr", Value: defaultClusterAddr, EnvVars: []string{"GRAFT_CLUSTER_ADDR"},
			Usage: "`HOST:PORT` of the cluster port (raft). Loopback by default: the port has no authentication " +
				"until cluster keys land, so do not expose it to other hosts"},
		&cli.StringFlag{Name: "api-addr", EnvVars: []string{"GRAFT_API_ADDR"},
			Usage: "also serve the local API on this loopback `HOST:PORT` (127.0.0.1, [::1] or localhost; " +
				"the API has no authentication, so other addresses are refused)"},
	}
}

// checkClusterAddrs checks the cluster and API addresses of the options.
func (o agentOptions) checkClusterAddrs(log *slog.Logger) error {
	host, _, err := net.SplitHostPort(o.clusterAddr)
	if err != nil {
		return usageError("--cluster-addr %q: want HOST:PORT: %v", o.clusterAddr, err)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		log.Warn("the cluster port is not on a loopback address and has no authentication yet: "+
			"anyone who can reach it can read and change the cluster's state", "cluster_addr", o.clusterAddr)
	}
	if o.apiAddr != "" {
		if _, _, err := net.SplitHostPort(o.apiAddr); err != nil {
			return usageError("--api-addr %q: want HOST:PORT: %v", o.apiAddr, err)
		}
	}
	return nil
}

// checkNodeID records host as the node ID of the state in dir when there is
// none yet, and fails if the state belongs to another node: raft's state
// names its node, and a node that came back under another name would be a
// stranger to its own cluster.
func checkNodeID(dir, host string) error {
	p := filepath.Join(dir, nodeIDFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if id == "" {
			return fmt.Errorf("data dir: %s is empty: write the node's name into it, or remove it to adopt this host's name %q", p, host)
		}
		if id != host {
			return fmt.Errorf("data dir %s belongs to node %q, but this host is named %q: run with --hostname %s (or use another --data-dir)", dir, id, host, id)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+nodeIDFile+".*")
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	_, werr := tmp.WriteString(host + "\n")
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("data dir: writing %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// startCluster starts, in this order, the state machine, the raft node
// (bootstrapping a one-node cluster if the data dir has no raft state), the
// World and the local API, and returns the function that stops them in the
// reverse order.
func startCluster(o agentOptions, dir string, log *slog.Logger) (stop func(), err error) {
	if err := checkNodeID(dir, o.hostname); err != nil {
		return nil, err
	}
	cfg := cluster.DefaultConfig()
	cfg.NodeID = o.hostname
	cfg.DataDir = dir
	cfg.BindAddr = o.clusterAddr
	cfg.Bootstrap = true
	cfg.Logger = log
	node, err := cluster.Open(cfg, fsm.New(fsm.Options{Logger: log.With("component", "fsm")}))
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w (is another graft agent running? give this one another port with --cluster-addr)", err)
	}
	if err != nil {
		return nil, err
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	stops = append(stops, func() {
		if err := node.Close(); err != nil {
			log.Error("closing the raft node", "err", err)
		}
	})
	log.Info("raft node started", "node", node.ID(), "cluster_addr", node.Addr())
	stops = append(stops,
		goRun(func(ctx context.Context) error { logLeadership(ctx, node, log); return nil }, nil),
		goRun(func(ctx context.Context) error { logCaughtUp(ctx, node, log); return nil }, nil))

	w, err := world.New(node, o.hostname, log.With("component", "world"))
	if err != nil {
		return nil, err
	}
	srv, err := api.NewServer(api.Config{Store: w, Status: node.Status, Host: o.hostname, Version: version(),
		Logger: log.With("component", "api")})
	if err != nil {
		return nil, err
	}
	lns, err := openAPI(dir, o.apiAddr)
	if err != nil {
		return nil, err
	}
	stops = append(stops, goRun(func(ctx context.Context) error { return srv.Serve(ctx, lns...) },
		func(err error) { log.Error("local API stopped", "err", err) }))
	attrs := []any{"socket", lns[0].Addr().String()}
	if len(lns) > 1 {
		attrs = append(attrs, "address", lns[1].Addr().String())
	}
	log.Info("local API listening", attrs...)
	return stopAll, nil
}

// openAPI opens the local API's listeners: the unix socket in dir and, if
// tcpAddr is set, a loopback TCP address.
func openAPI(dir, tcpAddr string) ([]net.Listener, error) {
	sock, err := api.ListenUnix(filepath.Join(dir, apiSocket))
	if err != nil {
		return nil, err
	}
	if tcpAddr == "" {
		return []net.Listener{sock}, nil
	}
	tcp, err := api.ListenTCP(tcpAddr)
	if err != nil {
		sock.Close()
		if errors.Is(err, api.ErrNotLoopback) {
			return nil, usageError("--api-addr: %v", err)
		}
		return nil, err
	}
	return []net.Listener{sock, tcp}, nil
}

// logLeadership logs every change of the cluster's leader as this node
// sees it, until ctx ends.
func logLeadership(ctx context.Context, n *cluster.Node, log *slog.Logger) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.Raft().RegisterObserver(obs)
	defer n.Raft().DeregisterObserver(obs)
	// Observations only wake the loop; the leader is read from the node,
	// so one dropped when the channel is full loses nothing.
	last, started := "", false
	for {
		if id, addr := n.Leader(); id != last || !started {
			switch {
			case id == n.ID():
				log.Info("this node is the cluster leader", "term", n.Raft().CurrentTerm())
			case id != "":
				log.Info("cluster leader", "leader", id, "leader_addr", addr)
			case started:
				log.Warn("lost the cluster leader; waiting for a new one")
			default:
				log.Info("waiting for a cluster leader")
			}
			last, started = id, true
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// logCaughtUp logs once this node's copy of the state holds every write the
// cluster committed before the agent started (until then, local reads may
// miss recent writes), trying until ctx ends.
func logCaughtUp(ctx context.Context, n *cluster.Node, log *slog.Logger) {
	for {
		err := n.Linearize(ctx)
		switch {
		case err == nil:
			log.Info("local state caught up with the cluster", "revision", n.FSM().Rev())
			return
		case ctx.Err() != nil, errors.Is(err, cluster.ErrClosed):
			return
		}
		log.Debug("not caught up with the cluster yet", "err", err)
	}
}
