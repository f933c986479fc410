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
