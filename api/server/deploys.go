package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/world"
)

// Deployer is the part of the World that stores deploys. *world.World
// satisfies it.
type Deployer interface {
	Deploy(ctx context.Context, origin string, graph []byte) (uint64, error)
	Rollback(ctx context.Context, n uint64) (uint64, error)
	Deploys(ctx context.Context, opts ...world.ReadOption) ([]world.Deploy, uint64, error)
	GetDeploy(ctx context.Context, n uint64, opts ...world.ReadOption) (world.Deploy, bool, error)
}

var _ Deployer = (*world.World)(nil)

// maxDeployBody bounds a deploy request: a graph of world.MaxDeploySize
// bytes in base64, and its origin.
const maxDeployBody = world.MaxDeploySize/3*4 + 64<<10

func deployInfo(d world.Deploy, newest uint64) api.DeployInfo {
	return api.DeployInfo{Number: d.Number, Time: d.Time, Host: d.Host, Origin: d.Origin, Size: len(d.Graph),
		RollbackOf: d.RollbackOf, Current: d.Number == newest}
}

// deployNumber returns the request's deploy number, checked.
func deployNumber(r *http.Request) (uint64, error) {
	n, err := strconv.ParseUint(r.PathValue("n"), 10, 64)
	if err != nil || n == 0 {
		return 0, badf("deploy number %q: want a positive integer", r.PathValue("n"))
	}
	return n, nil
}

// deployStatus maps the World's deploy errors to status codes, and the
// rest as every endpoint does.
func deployStatus(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, world.ErrNoDeploy):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, world.ErrNewestAlready):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, world.ErrDeployTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	default:
		fail(w, err)
	}
}

// deployers returns the deploys served, answering 501 if there are none.
func (s *Server) deployers(w http.ResponseWriter) (Deployer, bool) {
	if s.cfg.Deploys == nil {
		writeError(w, http.StatusNotImplemented, "this agent serves no deploys")
		return nil, false
	}
	return s.cfg.Deploys, true
}

// readDeploys reads the deploys as the request's read options say,
// answering the request itself if it cannot.
func (s *Server) readDeploys(w http.ResponseWriter, r *http.Request) ([]world.Deploy, uint64, bool) {
	d, ok := s.deployers(w)
	if !ok {
		return nil, 0, false
	}
	opts, err := s.readOpts(r)
	if err != nil {
		fail(w, err)
		return nil, 0, false
	}
	ds, rev, err := d.Deploys(r.Context(), opts...)
	if err != nil {
		fail(w, err)
		return nil, 0, false
	}
	s.readDone(opts)
	return ds, rev, true
}

func (s *Server) listDeploys(w http.ResponseWriter, r *http.Request) {
	ds, rev, ok := s.readDeploys(w, r)
	if !ok {
		return
	}
	out := api.DeployList{Rev: rev, Deploys: make([]api.DeployInfo, len(ds))}
	for i, x := range ds {
		out.Deploys[i] = deployInfo(x, ds[len(ds)-1].Number)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getDeploy(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.deployers(w); !ok {
		return
	}
	n, err := deployNumber(r)
	if err != nil {
		fail(w, err)
		return
	}
	ds, _, ok := s.readDeploys(w, r)
	if !ok {
		return
	}
	for _, x := range ds {
		if x.Number == n {
			writeJSON(w, http.StatusOK, api.Deploy{DeployInfo: deployInfo(x, ds[len(ds)-1].Number), Graph: x.Graph})
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("deploy %d: %v", n, world.ErrNoDeploy))
}

func (s *Server) postDeploy(w http.ResponseWriter, r *http.Request) {
	d, ok := s.deployers(w)
	if !ok {
		return
	}
	var req api.DeployRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDeployBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("deploy request larger than %d bytes", maxDeployBody))
			return
		}
		fail(w, badf("reading the deploy request: %v", err))
		return
	}
	if req.Origin == "" {
		fail(w, badf("the deploy request names no origin"))
		return
	}
	n, err := d.Deploy(r.Context(), req.Origin, req.Graph)
	if err != nil {
		deployStatus(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.DeployResult{Number: n})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	d, ok := s.deployers(w)
	if !ok {
		return
	}
	n, err := deployNumber(r)
	if err != nil {
		fail(w, err)
		return
	}
	m, err := d.Rollback(r.Context(), n)
	if err != nil {
		deployStatus(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.DeployResult{Number: m})
}
