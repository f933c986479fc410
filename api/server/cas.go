package server

import (
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/world"
)

// writeParams returns the revision a put's or a delete's ?cas= asks the
// key to be at, and whether it asks. A write's query must parse and hold
// nothing but cas: a typo, or a cas that cannot be read, must not turn a
// conditional write into one made whatever the key holds.
func writeParams(r *http.Request) (rev uint64, conditional bool, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, false, badf("query %q: %v", r.URL.RawQuery, err)
	}
	for name := range q {
		if name != "cas" {
			return 0, false, badf("unknown query parameter %q: a put or a delete takes cas only", name)
		}
	}
	vs, ok := q["cas"]
	switch {
	case !ok:
		return 0, false, nil
	case len(vs) != 1:
		return 0, false, badf("cas given %d times: want one revision", len(vs))
	}
	rev, err = strconv.ParseUint(vs[0], 10, 64)
	if err != nil {
		return 0, false, badf("cas=%q: want a revision, a whole number from 0 to %d (0: only if the key does not exist)",
			vs[0], uint64(math.MaxUint64))
	}
	return rev, true, nil
}

// answerSwap answers how a conditional write of key at revision cas went:
// 200 if it applied, 412 with the key as it is if the compare failed.
func answerSwap(w http.ResponseWriter, key string, cas uint64, s world.Swap, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	a := api.CASAnswer{Write: api.Write{Rev: s.Rev}, Applied: s.Applied}
	if s.Applied {
		writeJSON(w, http.StatusOK, a)
		return
	}
	if s.Found {
		kv := fromFSM(s.Current)
		a.KV = &kv
	}
	a.Error = api.CompareFailure(key, cas, a.KV)
	writeJSON(w, http.StatusPreconditionFailed, a)
}
