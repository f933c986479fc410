package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// The agent's own join takes the request whole, key included; a key of the
// wrong form is refused (400) before it, and never echoed; a refusal is
// 409 with its reason.
func TestJoinWithAKey(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	var got []api.JoinRequest
	answer := api.JoinResult{Restarting: true, KeyFingerprint: tok.Fingerprint()}
	var refuse error
	f := newFixture(t, fixtureOpts{cluster: &apitest.FakeCluster{}, join: func(_ context.Context, req api.JoinRequest) (api.JoinResult, error) {
		got = append(got, req)
		return answer, refuse
	}})
	res, err := f.client.JoinWith(t.Context(), api.JoinRequest{Addrs: []string{"10.0.0.2:7946"}, Token: tok.Secret()})
	if err != nil || res != answer {
		t.Fatalf("join with a key: %+v, %v; want %+v", res, err, answer)
	}
	if len(got) != 1 || got[0].Token != tok.Secret() || got[0].Addrs[0] != "10.0.0.2:7946" {
		t.Errorf("the agent's join got %+v", got)
	}

	_, err = f.client.JoinWith(t.Context(), api.JoinRequest{Addrs: []string{"10.0.0.2:7946"}, Token: "graft1_SECRETISH"})
	if api.StatusCode(err) != http.StatusBadRequest || strings.Contains(err.Error(), "SECRETISH") {
		t.Errorf("a malformed key: %v (status %d), want 400 without the key", err, api.StatusCode(err))
	}

	refuse = fmt.Errorf("%w: this node has had peers", api.ErrJoinRefused)
	if _, err := f.client.Join(t.Context(), []string{"10.0.0.2:7946"}); api.StatusCode(err) != http.StatusConflict ||
		!strings.Contains(err.Error(), "has had peers") {
		t.Errorf("a refused join: %v (status %d), want 409 with the reason", err, api.StatusCode(err))
	}
	refuse = fmt.Errorf("cluster: join: %w", &cluster.OtherClusterError{Peer: "a", ClusterID: "c1", Local: "c2"})
	if _, err := f.client.Join(t.Context(), []string{"10.0.0.2:7946"}); api.StatusCode(err) != http.StatusConflict {
		t.Errorf("a join of another cluster: %v (status %d), want 409", err, api.StatusCode(err))
	}
	refuse = errors.New("no installed keys could decrypt the message")
	if _, err := f.client.Join(t.Context(), []string{"10.0.0.2:7946"}); api.StatusCode(err) != http.StatusBadGateway {
		t.Errorf("a join nobody answered: %v (status %d), want 502", err, api.StatusCode(err))
	}
}

// An agent without its own join takes no key.
func TestJoinWithAKeyNeedsTheAgentsJoin(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	fc := &apitest.FakeCluster{}
	f := newFixture(t, fixtureOpts{cluster: fc})
	_, err = f.client.JoinWith(t.Context(), api.JoinRequest{Addrs: []string{"10.0.0.2:7946"}, Token: tok.Secret()})
	if api.StatusCode(err) != http.StatusBadRequest || len(fc.Joined()) != 0 {
		t.Errorf("a key with no agent join: %v (status %d), joined %q; want 400", err, api.StatusCode(err), fc.Joined())
	}
}

// Issue 9, item 7 (review): any user of the host could make the agent
// adopt another cluster's key, or set its own cluster aside, through the
// API's loopback TCP address. A join with a key is taken over the unix
// socket only (which only the agent's user can open): over TCP it is 403,
// and the agent's join never sees it. The agent's join learns which way a
// request came, to refuse a set-aside over TCP (403 too).
func TestAJoinWithAKeyOverTCPIsForbidden(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	var got []api.JoinRequest
	f := newFixture(t, fixtureOpts{tcp: true, cluster: &apitest.FakeCluster{},
		join: func(_ context.Context, req api.JoinRequest) (api.JoinResult, error) {
			got = append(got, req)
			if !req.OverSocket {
				return api.JoinResult{}, fmt.Errorf("setting aside: %w", api.ErrSocketOnly)
			}
			return api.JoinResult{Restarting: true}, nil
		}})
	_, err = f.tcpClient.JoinWith(t.Context(), api.JoinRequest{Addrs: []string{"10.0.0.2:7946"}, Token: tok.Secret()})
	if api.StatusCode(err) != http.StatusForbidden || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("a join with a key over TCP: %v (status %d), want 403 naming the unix socket", err, api.StatusCode(err))
	}
	if len(got) != 0 {
		t.Errorf("the agent's join saw a join with a key that came over TCP: %+v", got)
	}

	_, err = f.tcpClient.Join(t.Context(), []string{"10.0.0.2:7946"})
	if api.StatusCode(err) != http.StatusForbidden || len(got) != 1 || got[0].OverSocket {
		t.Errorf("a join the agent refuses over TCP: %v (status %d), requests %+v; want 403, not over the socket",
			err, api.StatusCode(err), got)
	}
	res, err := f.client.JoinWith(t.Context(), api.JoinRequest{Addrs: []string{"10.0.0.2:7946"}, Token: tok.Secret()})
	if err != nil || !res.Restarting || len(got) != 2 || !got[1].OverSocket {
		t.Errorf("a join with a key over the socket: %+v, %v, requests %+v; want it taken, over the socket", res, err, got)
	}
}
