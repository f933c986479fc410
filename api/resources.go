package api

import (
	"context"
	"net/http"
	"time"
)

// Resources is the answer of GET /v1/resources: the status of every
// resource of the graph this host runs.
type Resources struct {
	Host string `json:"host"`
	// Graph names the running graph; empty before the first is running.
	Graph string `json:"graph"`
	// Converged is the host's converged state (always false when the agent
	// reports no convergence).
	Converged bool           `json:"converged"`
	Counts    ResourceCounts `json:"counts"`
	// Resources are sorted by kind, then name.
	Resources []Resource `json:"resources"`
}

// ResourceCounts counts the resources by state. Changed counts those
// that changed something since the agent started.
type ResourceCounts struct {
	Total   int `json:"total"`
	OK      int `json:"ok"`
	Dirty   int `json:"dirty"`
	Running int `json:"running"`
	Waiting int `json:"waiting"`
	Failed  int `json:"failed"`
	Changed int `json:"changed"`
}

// Resource is the status of one resource.
type Resource struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// State is ok, dirty (a CheckApply is due), running (its CheckApply
	// is in progress), waiting (see Waiting) or failed (see Error).
	State string `json:"state"`
	// Waiting is what a waiting resource, or a failed one due to be
	// retried, waits for: semaphores, dependencies, retry, watch, limit
	// or swap.
	Waiting string `json:"waiting,omitempty"`
	// Error is the last failure's text; empty once a CheckApply succeeds.
	Error string `json:"error,omitempty"`
	// LastStart is when the last (or current) CheckApply began; absent if
	// none has. LastDurationSeconds is how long the last finished one took.
	LastStart           time.Time `json:"last_start,omitzero"`
	LastDurationSeconds float64   `json:"last_duration_seconds"`
	// Changed says whether the last CheckApply changed something (in noop:
	// found something to change); Changes counts those that did.
	Changed bool `json:"changed"`
	Changes int  `json:"changes"`
	// RetriesLeft is what is left of the retry metaparam's budget; -1
	// means unlimited.
	RetriesLeft int `json:"retries_left"`
	// SemaHeld and SemaWaiting list the semaphore tags the resource holds,
	// or waits for.
	SemaHeld    []string `json:"sema_held,omitempty"`
	SemaWaiting []string `json:"sema_waiting,omitempty"`
}

// Resources returns the status of the agent's resources.
func (c *Client) Resources(ctx context.Context) (Resources, error) {
	var rs Resources
	err := c.call(ctx, http.MethodGet, "/v1/resources", nil, nil, &rs)
	return rs, err
}
