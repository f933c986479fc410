package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	apiserver "github.com/graftcm/graft/api/server"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/internal/atomicfile"
)

const (
	// apiSocket is the local API's unix socket, in the data dir.
	apiSocket = "graft.sock"
	// nodeIDFile records, in the data dir, the raft node ID its state
	// belongs to.
	nodeIDFile = "node-id"
	// defaultClusterAddr is the cluster port's default address: raft and
	// forwarding, mutual TLS under the cluster key.
	defaultClusterAddr = "0.0.0.0:7947"
	// defaultGossipAddr is the gossip port's default address (UDP and
	// TCP), encrypted with the cluster key.
	defaultGossipAddr = "0.0.0.0:7946"
	// leaveTimeout bounds a graceful leave when the agent stops.
	leaveTimeout = 10 * time.Second
)

// clusterFlags are run's flags for the cluster server and the local API.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cluster-addr", Value: defaultClusterAddr, EnvVars: []string{"GRAFT_CLUSTER_ADDR"},
			Usage: "`HOST:PORT` of the cluster port (TCP: raft and forwarded writes, mutual TLS under the cluster key)"},
		&cli.StringFlag{Name: "gossip-addr", Value: defaultGossipAddr, EnvVars: []string{"GRAFT_GOSSIP_ADDR"},
			Usage: "`HOST:PORT` of the gossip port (UDP and TCP, encrypted with the cluster key): what other nodes --join"},
		&cli.StringFlag{Name: "advertise-addr", EnvVars: []string{"GRAFT_ADVERTISE_ADDR"},
			Usage: "the IP `ADDRESS` other nodes reach both ports at (default: the bound address, or, when that is " +
				"0.0.0.0, one of the host's)"},
		&cli.StringSliceFlag{Name: "join", EnvVars: []string{"GRAFT_JOIN"},
			Usage: "join the cluster through this member's gossip `HOST:PORT` (repeatable; retried with backoff until one answers)"},
		&cli.IntFlag{Name: "bootstrap-expect", EnvVars: []string{"GRAFT_BOOTSTRAP_EXPECT"},
			Usage: "a fresh node waits until `N` fresh nodes (all given the same N) see each other, then they start the " +
				"cluster together; 0: a node with nobody to --join starts a cluster alone"},
		&cli.IntFlag{Name: "voters", Value: cluster.DefaultServerConfig().Voters, EnvVars: []string{"GRAFT_VOTERS"},
			Usage: "the cluster's number of raft voters, `N` odd; further nodes are warm spares, promoted when a voter is lost"},
		&cli.StringFlag{Name: "cluster-name", Value: cluster.DefaultServerConfig().ClusterName, EnvVars: []string{"GRAFT_CLUSTER_NAME"},
			Usage: "the cluster's `NAME`; nodes of other names ignore each other"},
		&cli.BoolFlag{Name: "discover", EnvVars: []string{"GRAFT_DISCOVER"},
			Usage: "find the cluster's nodes on the LAN by multicast (default: on with no --join and no --bootstrap-expect, " +
				"when the gossip address is not loopback and its port fixed); fresh nodes with one key form one cluster"},
		&cli.BoolFlag{Name: "no-discover", Usage: "do not announce this node on the LAN, nor listen for others"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"GRAFT_TOKEN"},
			Usage: "the cluster key, `KEY` (graft1_...), kept in <data-dir>/token; the first node of a cluster makes one " +
				"and logs the command that joins others to it. Prefer GRAFT_TOKEN: the command line is visible to other users"},
		&cli.StringFlag{Name: "api-addr", EnvVars: []string{"GRAFT_API_ADDR"},
			Usage: "also serve the local API on this loopback `HOST:PORT` (127.0.0.1, [::1] or localhost; " +
				"the API has no authentication, so other addresses are refused)"},
		&cli.IntFlag{Name: "api-max-locks", Value: apiserver.DefaultMaxSemaRequests, EnvVars: []string{"GRAFT_API_MAX_LOCKS"},
			Usage: "at most `N` semaphore requests (graft lock, /v1/sema) open at once on the local API, waiting or holding; " +
				"more are refused with 429"},
	}
}

// clusterOptions are run's cluster flags, checked.
type clusterOptions struct {
	clusterAddr     string
	gossipAddr      string
	advertiseAddr   string
	join            []string
	bootstrapExpect int
	voters          int
	clusterName     string
	token           *clusterkey.Token // nil: from the data dir, or a new one
	apiAddr         string
	apiMaxLocks     int
	discover        bool // --discover, or its default (see discoverySetting)
	discoverAsked   bool // --discover was given: discovery that cannot start is an error
	// addrsSet: an address flag was given (--cluster-addr, --gossip-addr
	// or --advertise-addr), which a one-shot run then binds too.
	addrsSet bool
}

// parseClusterOptions reads and checks the cluster flags.
func parseClusterOptions(c *cli.Context) (clusterOptions, error) {
	o := clusterOptions{
		clusterAddr:     c.String("cluster-addr"),
		gossipAddr:      c.String("gossip-addr"),
		advertiseAddr:   c.String("advertise-addr"),
		bootstrapExpect: c.Int("bootstrap-expect"),
		voters:          c.Int("voters"),
		clusterName:     c.String("cluster-name"),
		apiAddr:         c.String("api-addr"),
		apiMaxLocks:     c.Int("api-max-locks"),
		addrsSet:        c.IsSet("cluster-addr") || c.IsSet("gossip-addr") || c.IsSet("advertise-addr"),
	}
	for _, j := range c.StringSlice("join") {
		if j = strings.TrimSpace(j); j != "" {
			o.join = append(o.join, j)
		}
	}
	clusterPort, err := hostPort("--cluster-addr", o.clusterAddr)
	if err != nil {
		return o, err
	}
	gossipHost, err := hostOf("--gossip-addr", o.gossipAddr)
	if err != nil {
		return o, err
	}
	if o.apiAddr != "" {
		if _, _, err := net.SplitHostPort(o.apiAddr); err != nil {
			return o, usageError("--api-addr %q: want HOST:PORT: %v", o.apiAddr, err)
		}
	}
	if o.apiMaxLocks < 1 {
		return o, usageError("--api-max-locks %d: want at least 1", o.apiMaxLocks)
	}
	if o.advertiseAddr != "" {
		ip := net.ParseIP(o.advertiseAddr)
		switch {
		case ip == nil:
			return o, usageError("--advertise-addr %q: want an IP address (no port: it serves both ports)", o.advertiseAddr)
		case ip.IsUnspecified():
			return o, usageError("--advertise-addr %q: other nodes cannot reach an unspecified address", o.advertiseAddr)
		case clusterPort == 0:
			// The cluster port's number is known only once it is bound,
			// and the advertised address would carry port 0.
			return o, usageError("--advertise-addr needs a fixed --cluster-addr port, not 0")
		}
	}
	switch ip := net.ParseIP(gossipHost); {
	case gossipHost == "":
		// memberlist picks an address to advertise only for a bind
		// address of exactly 0.0.0.0.
		_, port, _ := net.SplitHostPort(o.gossipAddr)
		o.gossipAddr = net.JoinHostPort("0.0.0.0", port)
	case ip == nil:
		// memberlist would bind every address and advertise "::".
		return o, usageError("--gossip-addr %q: want an IP address (or 0.0.0.0), not a name", o.gossipAddr)
	case ip.IsUnspecified() && ip.To4() == nil && o.advertiseAddr == "":
		return o, usageError("--gossip-addr %q: give the address to advertise with --advertise-addr", o.gossipAddr)
	}
	if o.voters < 1 || o.voters%2 == 0 {
		return o, usageError("--voters: %d is not an odd number of voters (1, 3, 5...): an even number tolerates no more failures than the odd one below it", o.voters)
	}
	switch {
	case o.bootstrapExpect < 0:
		return o, usageError("--bootstrap-expect: %d is not a number of servers (0 means: do not wait)", o.bootstrapExpect)
	case o.bootstrapExpect > o.voters:
		return o, usageError("--bootstrap-expect %d is more than --voters %d: every server bootstrapped together is a voter", o.bootstrapExpect, o.voters)
	}
	if o.clusterName == "" {
		return o, usageError("--cluster-name is empty")
	}
	if err := o.discoverySetting(c.IsSet("discover"), c.Bool("discover"), c.Bool("no-discover")); err != nil {
		return o, err
	}
	if text := c.String("token"); text != "" {
		tok, err := clusterkey.Parse(text) // its errors never hold the text
		if err != nil {
			return o, usageError("--token (or GRAFT_TOKEN): %v", err)
		}
		o.token = &tok
	}
	return o, nil
}

// hostPort checks a HOST:PORT flag and returns its port.
func hostPort(flag, addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, usageError("%s %q: want HOST:PORT: %v", flag, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, usageError("%s %q: the port is not a number from 0 to 65535", flag, addr)
	}
	return port, nil
}

// hostOf checks a HOST:PORT flag and returns its host.
func hostOf(flag, addr string) (string, error) {
	if _, err := hostPort(flag, addr); err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	return host, nil
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
		if !plausibleNodeID(id) {
			return fmt.Errorf("data dir: %s is damaged: it holds %q, not a node name: write the node's name into it "+
				"(the --hostname it ran with), or remove it to adopt this host's name %q", p, id, host)
		}
		if id != host {
			return fmt.Errorf("data dir %s belongs to node %q, but this host is named %q: run with --hostname %s (or use another --data-dir)", dir, id, host, id)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data dir: %w", err)
	}
	if err := atomicfile.Write(p, []byte(host+"\n"), 0o600, true); err != nil {
		return fmt.Errorf("data dir: writing %s: %w", p, err)
	}
	return nil
}

// plausibleNodeID reports whether id may be a node name that graft
// wrote: printable, without spaces or slashes, at most 256 bytes (see
// raftnode.Config.Validate).
func plausibleNodeID(id string) bool {
	if len(id) > 256 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '/' {
			return false
		}
	}
	return true
}

// serverConfig is the cluster server's configuration the options ask for.
func (o agentOptions) serverConfig(dir string, key clusterkey.Token, log *slog.Logger) cluster.ServerConfig {
	cfg := cluster.DefaultServerConfig()
	cfg.Raft.NodeID = o.hostname
	cfg.Raft.DataDir = dir
	cfg.Raft.BindAddr = o.clusterAddr
	cfg.Raft.Logger = log
	cfg.ClusterName = o.clusterName
	cfg.GossipBind = o.gossipAddr
	if o.advertiseAddr != "" {
		_, clusterPort, _ := net.SplitHostPort(o.clusterAddr)
		_, gossipPort, _ := net.SplitHostPort(o.gossipAddr) // 0: memberlist advertises the port it bound
		cfg.Raft.AdvertiseAddr = net.JoinHostPort(o.advertiseAddr, clusterPort)
		cfg.GossipAdvertise = net.JoinHostPort(o.advertiseAddr, gossipPort)
	}
	cfg.Join = o.join
	cfg.BootstrapExpect = o.bootstrapExpect
	cfg.Voters = o.voters
	if o.exportGrace > 0 { // zero: options not parsed from flags (tests)
		cfg.ExportGrace = o.exportGrace
	}
	cfg.Token = &key
	cfg.Version = version()
	return cfg
}

// startError adds what to do to the error of a cluster server that did not
// start.
func startError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrGossipPortInUse):
		return fmt.Errorf("%w (is another graft agent running? give this one another port with --gossip-addr)", err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w (is another graft agent running? give this one another port with --cluster-addr)", err)
	case errors.Is(err, cluster.ErrNoAdvertiseAddr):
		return fmt.Errorf("%w (name the address other nodes reach this one at with --advertise-addr)", err)
	}
	return err
}

// checkAdvertised warns when the cluster port and the gossip port advertise
// different hosts, each having picked one of the host's addresses.
func checkAdvertised(clusterAddr, gossipAddr string, log *slog.Logger) {
	ch, _, err1 := net.SplitHostPort(clusterAddr)
	gh, _, err2 := net.SplitHostPort(gossipAddr)
	if err1 == nil && err2 == nil && ch != gh {
		log.Warn("the cluster port and the gossip port advertise different addresses; "+
			"if other nodes cannot reach both, name one with --advertise-addr",
			"cluster_addr", clusterAddr, "gossip_addr", gossipAddr)
	}
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
