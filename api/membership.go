package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/graftcm/graft/cluster"
)

// Cluster is the membership the API serves. *cluster.Server satisfies it.
type Cluster interface {
	// Join joins the gossip ring through any of addrs and returns how many
	// nodes answered.
	Join(addrs []string) (int, error)
	// Members lists the nodes this node knows of, sorted by name.
	Members() []cluster.MemberInfo
	// ClusterID is the cluster's ID, empty until this node knows it.
	ClusterID() string
	// GossipAddr is this node's gossip address.
	GossipAddr() string
}

var _ Cluster = (*cluster.Server)(nil)

// JoinFunc serves a join request in the agent's own way (Config.Join):
// it may adopt the request's key, or restart the node's cluster side to
// join another cluster. Its errors may match ErrJoinRefused,
// cluster.ErrOtherCluster or cluster.ErrClusterIDUnknown (409), or
// ErrSocketOnly (403). A request with a key that did not come over the
// unix socket is refused (403) before it.
type JoinFunc func(ctx context.Context, req JoinRequest) (JoinResult, error)

// JoinRequest is the body of POST /v1/join: gossip addresses (HOST:PORT)
// of any members of the cluster to join and, optionally, that cluster's
// key, which only a node that never had a peer adopts (the server checks
// its form: a bad one is 400).
type JoinRequest struct {
	Addrs []string `json:"addrs"`
	Token string   `json:"token,omitempty"`
	// OverSocket is set by the server, never by the body: the request came
	// over the agent's unix socket, which only the agent's user (and root)
	// can open, not over a TCP address, which any user of the host can
	// reach. A join with a key, or one that would set the node's own
	// cluster aside, is for the former only (see ErrSocketOnly).
	OverSocket bool `json:"-"`
}

// JoinResult answers a join: how many of the nodes asked answered, or,
// when the node (one that never had a peer) restarts its cluster side to
// join, what it does. The join then completes after the restart, which
// closes and reopens the API: `graft members` shows it.
type JoinResult struct {
	Joined int `json:"joined"`
	// Restarting is set when the node restarts its cluster side to join.
	Restarting bool `json:"restarting,omitempty"`
	// KeyFingerprint is the fingerprint of the key the node adopted.
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	// OtherCluster is the ID of the cluster the addresses belong to, when
	// the node set its own one-node cluster aside to join it: SetAside is
	// the directory that now holds that cluster's state (a data dir an
	// agent can run on), and SetAsideKeys how many keys it held, none of
	// which is copied into the cluster joined.
	OtherCluster string `json:"other_cluster,omitempty"`
	SetAside     string `json:"set_aside,omitempty"`
	SetAsideKeys int    `json:"set_aside_keys,omitempty"`
}

// ErrJoinRefused is matched by the error of a join the agent refuses: a
// node that has had peers keeps its cluster and its key.
var ErrJoinRefused = errors.New("the agent refuses the join")

// ErrSocketOnly is matched by the error of a join that only the agent's
// user may ask for (see JoinRequest.OverSocket), asked for over TCP: it
// is answered 403.
var ErrSocketOnly = errors.New("only the agent's unix socket takes this join (it moves the node to another " +
	"cluster, and any user of the host can reach the API's TCP address): use the socket, --data-dir or --api PATH")

// LeaveResult is one line of the answer to POST /v1/leave, a stream of
// JSON objects: first {"leaving": true} once the agent has taken the
// request, then, once it has left its cluster (its running resources
// finish first), {"left": true}, or {"error": "..."} saying why it could
// not leave gracefully. The agent stops either way.
type LeaveResult struct {
	Leaving bool   `json:"leaving,omitempty"`
	Left    bool   `json:"left,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ErrLeaveFailed means the agent could not leave its cluster gracefully:
// it stops anyway, leaves the gossip ring, and keeps its raft seat until
// the cluster can remove it without losing its quorum.
var ErrLeaveFailed = errors.New("the agent could not leave its cluster gracefully")

// maxJoinBody bounds a join request's body.
const maxJoinBody = 64 << 10

// notServed answers 501 for an endpoint the agent was not given the means
// to serve.
func notServed(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotImplemented, fmt.Sprintf("this agent runs no cluster membership: %s is not served", what))
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster == nil {
		notServed(w, r.URL.Path)
		return
	}
	var req JoinRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJoinBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, badf("join: want a body like {\"addrs\": [\"HOST:PORT\"]}: %v", err))
		return
	}
	if len(req.Addrs) == 0 {
		fail(w, badf("join: no addresses"))
		return
	}
	if len(req.Addrs) > maxJoinAddrs {
		fail(w, badf("join: %d addresses, at most %d", len(req.Addrs), maxJoinAddrs))
		return
	}
	for _, a := range req.Addrs {
		if a == "" {
			fail(w, badf("join: an empty address"))
			return
		}
	}
	if req.Token != "" {
		if _, err := cluster.ParseToken(req.Token); err != nil { // its errors never hold the key
			fail(w, badf("join: token: %v", err))
			return
		}
	}
	if req.Token != "" && s.cfg.Join == nil {
		fail(w, badf("join: this agent takes no key with a join"))
		return
	}
	req.OverSocket = overSocket(r)
	if req.Token != "" && !req.OverSocket {
		if s.cfg.OwnKey == nil || !s.cfg.OwnKey(req.Token) {
			writeError(w, http.StatusForbidden, "join with a key: "+ErrSocketOnly.Error())
			return
		}
		req.Token = "" // the node's own key: a plain join
	}
	// memberlist bounds each attempt by its TCP timeout, not by the
	// request's context.
	var res JoinResult
	var err error
	if s.cfg.Join != nil {
		res, err = s.cfg.Join(r.Context(), req)
	} else {
		res.Joined, err = s.cfg.Cluster.Join(req.Addrs)
	}
	switch {
	case errors.Is(err, ErrSocketOnly):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrJoinRefused), errors.Is(err, cluster.ErrOtherCluster), errors.Is(err, cluster.ErrClusterIDUnknown):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		// No node answered: the addresses are wrong, the nodes down, or
		// they hold another cluster key.
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// overSocket reports whether r came over a unix socket.
func overSocket(r *http.Request) bool {
	_, ok := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr)
	return ok
}

// maxJoinAddrs bounds one join request: memberlist tries each address in
// turn, each for its TCP timeout.
const maxJoinAddrs = 16

func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster == nil {
		notServed(w, r.URL.Path)
		return
	}
	ms := s.cfg.Cluster.Members()
	if ms == nil {
		ms = []cluster.MemberInfo{}
	}
	writeJSON(w, http.StatusOK, ms)
}

// errAPIClosed is the answer of a leave whose outcome did not come
// before the API closed.
var errAPIClosed = errors.New("the agent's local API closed before the agent said whether it left its cluster " +
	"(its cluster side restarted, or the agent stopped another way): see the agent's log")

// leave says it took the request, asks the agent to leave and stop, and
// then says how the leave went: the agent closes the API only after it has
// left, so the answer gets out. An API that closes first (its cluster side
// restarts) stops waiting, and says so: its shutdown waits for the
// handler, and the outcome may come only after the shutdown.
func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Leave == nil {
		notServed(w, r.URL.Path)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(res LeaveResult) {
		if enc.Encode(res) == nil {
			_ = rc.Flush() // a client gone is noticed through r.Context()
		}
	}
	send(LeaveResult{Leaving: true})
	s.log.Info("asked through the local API to leave the cluster and stop")
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := s.cfg.Leave(ctx)
	switch {
	case r.Context().Err() != nil:
		return // the client went away; the agent leaves all the same
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		err = errAPIClosed // no outcome, only the API's closing
	}
	if err != nil {
		send(LeaveResult{Error: err.Error()})
		return
	}
	send(LeaveResult{Left: true})
}

// Join asks the agent to join the cluster through any of addrs (gossip
// addresses of its members) and returns how many answered. It fails, with
// status 502, when none did.
func (c *Client) Join(ctx context.Context, addrs []string) (int, error) {
	res, err := c.JoinWith(ctx, JoinRequest{Addrs: addrs})
	return res.Joined, err
}

// JoinWith sends a join request, which may carry the cluster's key, and
// returns the agent's answer. It fails with status 502 when no address
// answered, 409 when the agent refuses (a node that had peers keeps its
// cluster and key; see ErrJoinRefused), 403 when the join is for the
// agent's unix socket only and the client talks to it over TCP (see
// ErrSocketOnly).
func (c *Client) JoinWith(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if len(req.Addrs) == 0 {
		return JoinResult{}, errors.New("api: join: no addresses")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return JoinResult{}, fmt.Errorf("api: %w", err)
	}
	var res JoinResult
	err = c.call(ctx, http.MethodPost, "/v1/join", nil, body, &res)
	return res, err
}

// Members returns the cluster's members as the agent sees them, sorted by
// name.
func (c *Client) Members(ctx context.Context) ([]cluster.MemberInfo, error) {
	var ms []cluster.MemberInfo
	err := c.call(ctx, http.MethodGet, "/v1/members", nil, nil, &ms)
	return ms, err
}

// Leave asks the agent to leave its cluster gracefully and then stop, and
// waits until it has left or ctx ends. accepted, if not nil, is called
// once the agent has taken the request (its running resources finish
// before it leaves). Leave returns nil once the agent has left (it stops
// then), an error matching ErrLeaveFailed if it could not leave
// gracefully (it stops anyway), or ctx's error.
func (c *Client) Leave(ctx context.Context, accepted func()) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/leave", nil, []byte{})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxJoinBody))
	for {
		var res LeaveResult
		err := dec.Decode(&res)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("api: the agent stopped answering before it said whether it left its cluster: %w", err)
		case res.Error != "":
			return fmt.Errorf("%w: %s", ErrLeaveFailed, res.Error)
		case res.Left:
			return nil
		case res.Leaving && accepted != nil:
			accepted()
			accepted = nil
		}
	}
}
