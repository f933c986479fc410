package server

import (
	"net/http"

	"github.com/graftcm/graft/api"
)

// resources answers GET /v1/resources with Config.Resources, or 501
// without it.
func (s *Server) resources(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Resources == nil {
		writeError(w, http.StatusNotImplemented, "this agent runs no resources: /v1/resources is not served")
		return
	}
	rs := s.cfg.Resources()
	rs.Host = s.cfg.Host
	if rs.Resources == nil {
		rs.Resources = []api.Resource{}
	}
	writeJSON(w, http.StatusOK, rs)
}

// graph answers GET /v1/graph with Config.Graph, or 501 without it.
func (s *Server) graph(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Graph == nil {
		writeError(w, http.StatusNotImplemented, "this agent runs no resources: /v1/graph is not served")
		return
	}
	g := s.cfg.Graph()
	g.Host = s.cfg.Host
	if g.Vertices == nil {
		g.Vertices = []api.GraphVertex{}
	}
	if g.Edges == nil {
		g.Edges = []api.GraphEdge{}
	}
	writeJSON(w, http.StatusOK, g)
}
