package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// DeployInfo describes one deploy.
type DeployInfo struct {
	Number uint64 `json:"number"`
	// Time is when it was made, by the deploying host's clock.
	Time time.Time `json:"time"`
	// Host is the host whose agent stored it.
	Host string `json:"host"`
	// Origin is the name of the file it came from.
	Origin string `json:"origin"`
	// Size is the graph's size in bytes.
	Size int `json:"size"`
	// RollbackOf is the deploy a rollback copied, else 0.
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	// Current says it is the newest: the one hosts following deploys run.
	Current bool `json:"current"`
}

// Deploy is a deploy and its graph.
type Deploy struct {
	DeployInfo
	// Graph is the graph file's contents (base64 in JSON).
	Graph []byte `json:"graph"`
}

// DeployList is the answer to a list of deploys: every deploy, oldest
// first, and the revision they are current at.
type DeployList struct {
	Rev     uint64       `json:"rev"`
	Deploys []DeployInfo `json:"deploys"`
}

// DeployRequest asks to store a graph as the newest deploy.
type DeployRequest struct {
	Origin string `json:"origin"`
	Graph  []byte `json:"graph"`
}

// DeployResult is the answer to a deploy or a rollback: the number of the
// deploy made.
type DeployResult struct {
	Number uint64 `json:"number"`
}

// Deploy stores graph, read from the file named origin, as the newest
// deploy and returns its number.
func (c *Client) Deploy(ctx context.Context, origin string, graph []byte) (uint64, error) {
	body, err := json.Marshal(DeployRequest{Origin: origin, Graph: graph})
	if err != nil {
		return 0, fmt.Errorf("api: %w", err)
	}
	var res DeployResult
	err = c.call(ctx, http.MethodPost, "/v1/deploys", nil, body, &res)
	return res.Number, err
}

// Deploys returns every deploy, oldest first.
func (c *Client) Deploys(ctx context.Context, opts ...ReadOption) (DeployList, error) {
	var l DeployList
	err := c.read(ctx, "/v1/deploys", opts, nil, &l)
	return l, err
}

// GetDeploy returns deploy n and its graph; an *Error with status 404 if
// it does not exist.
func (c *Client) GetDeploy(ctx context.Context, n uint64, opts ...ReadOption) (Deploy, error) {
	var d Deploy
	err := c.read(ctx, fmt.Sprintf("/v1/deploys/%d", n), opts, nil, &d)
	return d, err
}

// Rollback makes deploy n's graph the newest deploy again, as a new
// deploy, and returns its number.
func (c *Client) Rollback(ctx context.Context, n uint64) (uint64, error) {
	var res DeployResult
	err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/deploys/%d/rollback", n), nil, []byte("{}"), &res)
	return res.Number, err
}
