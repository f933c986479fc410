package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
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
type JoinFunc func(ctx context.Context, req api.JoinRequest) (api.JoinResult, error)

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
	var req api.JoinRequest
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
		if _, err := clusterkey.Parse(req.Token); err != nil { // its errors never hold the key
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
			writeError(w, http.StatusForbidden, "join with a key: "+api.ErrSocketOnly.Error())
			return
		}
		req.Token = "" // the node's own key: a plain join
	}
	// memberlist bounds each attempt by its TCP timeout, not by the
	// request's context.
	var res api.JoinResult
	var err error
	if s.cfg.Join != nil {
		res, err = s.cfg.Join(r.Context(), req)
	} else {
		res.Joined, err = s.cfg.Cluster.Join(req.Addrs)
	}
	switch {
	case errors.Is(err, api.ErrSocketOnly):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, api.ErrJoinRefused), errors.Is(err, cluster.ErrOtherCluster), errors.Is(err, cluster.ErrClusterIDUnknown):
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
	writeJSON(w, http.StatusOK, fromMembers(s.cfg.Cluster.Members()))
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
	send := func(res api.LeaveResult) {
		if enc.Encode(res) == nil {
			_ = rc.Flush() // a client gone is noticed through r.Context()
		}
	}
	send(api.LeaveResult{Leaving: true})
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
		send(api.LeaveResult{Error: err.Error()})
		return
	}
	send(api.LeaveResult{Left: true})
}

// Join asks the agent to join the cluster through any of addrs (gossip
// addresses of its members) and returns how many answered. It fails, with
