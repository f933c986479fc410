package api

import (
	"context"
	"net/http"
)

// Graph is the answer of GET /v1/graph: the graph this host runs, each
// resource with its state, and the edges between them. It is what `graft
// graph` draws.
type Graph struct {
	Host string `json:"host"`
	// Graph names the running graph; empty before the first is running.
	Graph     string `json:"graph"`
	Converged bool   `json:"converged"`
	// Vertices are sorted by kind, then name.
	Vertices []GraphVertex `json:"vertices"`
	// Edges are sorted by from, then to.
	Edges []GraphEdge `json:"edges"`
}

// ResourceID names a resource: its kind and name.
type ResourceID struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// GraphVertex is one vertex of the graph: a resource, or a group of
// resources the agent merged into one vertex (autogroup), named after its
// first member.
type GraphVertex struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// State and Waiting are as in Resource.
	State   string `json:"state"`
	Waiting string `json:"waiting,omitempty"`
	// Members lists, sorted, the resources of a group, the vertex's own
	// included; absent for a vertex of one resource.
	Members []ResourceID `json:"members,omitempty"`
}

// GraphEdge is an edge: From is applied before To.
type GraphEdge struct {
	From ResourceID `json:"from"`
	To   ResourceID `json:"to"`
	// Notify says that a change made by From refreshes To.
	Notify bool `json:"notify,omitempty"`
	// Keys are the values the edge sends (send/recv), sorted.
	Keys []GraphKey `json:"keys,omitempty"`
}

// GraphKey sends the value From publishes under Send into To's parameter
// Recv.
type GraphKey struct {
	Send string `json:"send"`
	Recv string `json:"recv"`
}

// Graph returns the agent's running graph with the state of each
// resource.
func (c *Client) Graph(ctx context.Context) (Graph, error) {
	var g Graph
	err := c.call(ctx, http.MethodGet, "/v1/graph", nil, nil, &g)
	return g, err
}
