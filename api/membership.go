package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

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
func (c *Client) Members(ctx context.Context) ([]MemberInfo, error) {
	var ms []MemberInfo
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
