package server

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/world"
)

// TestMain doubles, with foreignServeEnv set, as a server that answers on
// a unix socket as an agent would (see serveAs).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is an API server on a unix socket, in front of the World of the
// first member of an in-process cluster, and a client of it.
type fixture struct {
	cluster *clustertest.Cluster
	world   *world.World
	sock    string
	client  *api.Client
	// raw sends hand-made requests over the socket.
	raw       *http.Client
	tcpClient *api.Client  // over TCP, with fixtureOpts.tcp
	tcpAddr   string       // the TCP listener's host:port, with fixtureOpts.tcp
	stop      func() error // stops the server; returns Serve's error
}

type fixtureOpts struct {
	nodes   int
	history int
	timeout time.Duration
	store   func(Store) Store // wraps the World
	// node is the server's Config.Node; realNode makes it member 0's
	// cluster node.
	node     Node
	realNode bool
	// The membership side of Config.
	cluster     Cluster
	join        JoinFunc
	leave       func(context.Context) error
	fingerprint string
	// tcp serves the API on a loopback TCP address too, for tcpClient.
	tcp bool
	// deploys serves the World's deploys.
	deploys bool
	// The semaphore side of Config (the World serves semaphores).
	maxSema   int
	keepalive time.Duration
	// resources is Config.Resources.
	resources func() api.Resources
	// graph is Config.Graph.
	graph func() api.Graph
	// listen, if set, wraps each listener the server serves on.
	listen func(net.Listener) net.Listener
}

// newFixture starts a one-node cluster (or opts.nodes), waits for its
// leader, and serves the API of member 0. Everything stops when the test
// ends.
func newFixture(t *testing.T, opts fixtureOpts) *fixture {
	t.Helper()
	if opts.nodes == 0 {
		opts.nodes = 1
	}
	var copts []clustertest.Option
	if opts.history > 0 {
		copts = append(copts, clustertest.WithHistory(opts.history))
	}
	c := clustertest.New(t, opts.nodes, copts...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]
	w, err := world.New(m.Node(), m.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var store Store = w
	if opts.store != nil {
		store = opts.store(w)
	}
	node := m.Node()
	if opts.realNode {
		opts.node = node
	}
	var deploys Deployer
	if opts.deploys {
		deploys = w
	}
	srv, err := NewServer(Config{Store: store, Deploys: deploys, Status: node.Status, Node: opts.node, Host: m.ID, Version: "v-test", Timeout: opts.timeout,
		Cluster: opts.cluster, Join: opts.join, Leave: opts.leave, KeyFingerprint: opts.fingerprint,
		Semaphores: w, MaxSemaRequests: opts.maxSema, SemaKeepalive: opts.keepalive, Resources: opts.resources, Graph: opts.graph})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "graft.sock")
	ln, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	lns := []net.Listener{ln}
	var tcpClient *api.Client
	var tcpAddr string
	if opts.tcp {
		tln, err := api.ListenTCP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, tln)
		tcpAddr = tln.Addr().String()
		if tcpClient, err = api.NewClient("http://" + tln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tcpClient.Close() })
	}
	if opts.listen != nil {
		for i := range lns {
			lns[i] = opts.listen(lns[i])
		}
	}
	rawTr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return api.DialUnix(ctx, sock) }}
	f := &fixture{cluster: c, world: w, sock: sock, client: client, raw: &http.Client{Transport: rawTr}, tcpClient: tcpClient, tcpAddr: tcpAddr,
		stop: serve(t, srv, lns...)}
	t.Cleanup(func() { client.Close(); rawTr.CloseIdleConnections() })
	return f
}

// serve runs srv.Serve on its own goroutine; the returned function (also
// called when the test ends) stops it and returns its error.
func serve(t *testing.T, srv *Server, lns ...net.Listener) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lns...) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { stop() })
	return stop
}
