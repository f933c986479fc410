package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// Store is the part of the World the API serves. *world.World satisfies
// it.
type Store interface {
	Get(ctx context.Context, key string, opts ...world.ReadOption) (fsm.KV, bool, error)
	List(ctx context.Context, prefix string, opts ...world.ReadOption) ([]fsm.KV, uint64, error)
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string) (uint64, error)
	// PutIfRev and DeleteIfRev write only if the key's ModRev is rev (0:
	// if it does not exist), comparing and writing in one raft entry.
	PutIfRev(ctx context.Context, key string, rev uint64, value []byte) (world.Swap, error)
	DeleteIfRev(ctx context.Context, key string, rev uint64) (world.Swap, error)
	// Watch follows the keys under prefix after revision from until ctx
	// ends, then closes the channel.
	Watch(ctx context.Context, prefix string, from uint64) <-chan world.WatchEvent
	// Rev is the revision of the local state.
	Rev() uint64
}

var _ Store = (*world.World)(nil)

// Node is the raft node whose local copy the Store serves: what the server
// asks to know how fresh a local read is. *raftnode.Node satisfies it.
type Node interface {
	// CaughtUp reports whether the local copy has applied everything the
	// node's log held when it started; once true it stays true.
	CaughtUp() bool
	// LeaderContact is when the node last heard from a leader: on the
	// leader, when a majority of the voters last answered it; the zero
	// time if never since it started.
	LeaderContact() time.Time
	// Leader returns the leader's ID and address, empty if unknown.
	Leader() (id, addr string)
}

var _ Node = (*raftnode.Node)(nil)

// DefaultTimeout bounds every request but watches.
const DefaultTimeout = 10 * time.Second

// Config configures a Server.
type Config struct {
	// Store is the state served. Required.
	Store Store
	// Status returns the node's view of the cluster (*raftnode.Node's
	// Status). Required.
	Status func() raftnode.Status
	// Node tells whether the local copy may answer reads yet and how
	// recently it heard from a leader, which every read answer reports.
	// Nil: every read is linearizable until one linearizable read has
	// succeeded, and answers report no leader contact.
	Node Node
	// Host and Version are reported by /v1/status.
	Host    string
	Version string
	// Cluster is the node's membership, for /v1/join and /v1/members and
	// the cluster fields of /v1/status. Nil: those endpoints answer 501.
	Cluster Cluster
	// Join, if set, serves /v1/join instead of Cluster.Join, and may take
	// the cluster's key with the addresses (a join with a key is refused
	// without it).
	Join JoinFunc
	// OwnKey, if set, reports whether key (its text form, checked) is the
	// key the node holds: a join that carries it over TCP moves nothing,
	// and is taken as a plain join rather than refused (see
	// ErrSocketOnly).
	OwnKey func(key string) bool
	// KeyFingerprint is the cluster key's fingerprint, reported by
	// /v1/status (never the key).
	KeyFingerprint string
	// Leave makes the agent leave its cluster gracefully and then stop,
	// and waits until ctx ends for the outcome of the leave: nil once the
	// agent has left (or had nothing to leave), else why it could not.
	// /v1/leave calls it after saying it took the request, with a ctx
	// that also ends when the API begins to close; it may be called more
	// than once. Nil: /v1/leave answers 501.
	Leave func(ctx context.Context) error
	// Resources returns the status of the host's resources, for
	// /v1/resources; it must be cheap and never block for long. Nil: that
	// endpoint answers 501.
	Resources func() api.Resources
	// Graph returns the host's running graph with the state of each
	// vertex, for /v1/graph; it must be cheap and never block for long.
	// Nil: that endpoint answers 501.
	Graph func() api.Graph
	// Deploys stores and lists deploys, for /v1/deploys. Nil: those
	// endpoints answer 501.
	Deploys Deployer
	// Semaphores serves /v1/sema: cluster-wide semaphore slots held by
	// open requests. Nil: those endpoints answer 501.
	Semaphores Semaphores
	// MaxSemaRequests caps the /v1/sema requests open at once, waiting or
	// holding a slot: each holds a connection and, once granted, a slot
	// of the cluster. One beyond it is refused with 429. Zero means
	// DefaultMaxSemaRequests.
	MaxSemaRequests int
	// SemaKeepalive is how often a held slot's stream carries a keepalive
	// line, by which a client tells a live agent from a frozen one. Zero
	// means DefaultSemaKeepalive.
	SemaKeepalive time.Duration
	// Timeout bounds each request but watches; zero means DefaultTimeout.
	// A write that has no leader within it fails with 503, one that
	// timed out otherwise with 504.
	Timeout time.Duration
	// Logger receives failed requests (at warn) and every request (at
	// debug). Nil discards them.
	Logger *slog.Logger
}

// Server serves the local API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	serveOnce sync.Once
	stopOnce  sync.Once
	stopping  chan struct{} // closed when Stop begins: ends watches, leaves and held slots
	inflight  inflight      // the requests running, for Stop

	holds holds // the open /v1/sema requests

	// current is set once a linearizable read has succeeded: the local
	// copy of the state has then caught up with the cluster since the
	// agent started. Until then, or until the Node is caught up, every
	// read is made linearizable, since a node that just restarted may not
	// have replayed its log yet.
	current atomic.Bool
}

// NewServer returns a server for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Status == nil {
		return nil, errors.New("api: Config needs Store and Status")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("api: Timeout is %v, want a positive duration (or 0 for the default)", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxSemaRequests < 0 {
		return nil, fmt.Errorf("api: MaxSemaRequests is %d, want a positive number (or 0 for the default)", cfg.MaxSemaRequests)
	}
	if cfg.MaxSemaRequests == 0 {
		cfg.MaxSemaRequests = DefaultMaxSemaRequests
	}
	if cfg.SemaKeepalive < 0 {
		return nil, fmt.Errorf("api: SemaKeepalive is %v, want a positive duration (or 0 for the default)", cfg.SemaKeepalive)
	}
	if cfg.SemaKeepalive == 0 {
		cfg.SemaKeepalive = DefaultSemaKeepalive
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stopping: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kv/{key...}", s.bounded(s.get))
	mux.HandleFunc("PUT /v1/kv/{key...}", s.bounded(s.put))
	mux.HandleFunc("DELETE /v1/kv/{key...}", s.bounded(s.del))
	mux.HandleFunc("GET /v1/kv", s.bounded(s.list))
	mux.HandleFunc("GET /v1/watch", s.watch)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/resources", s.resources)
	mux.HandleFunc("GET /v1/graph", s.graph)
	mux.HandleFunc("POST /v1/join", s.bounded(s.join))
	mux.HandleFunc("GET /v1/members", s.members)
	mux.HandleFunc("POST /v1/leave", s.leave)
	mux.HandleFunc("POST /v1/sema/{id...}", s.semaAcquire)
	mux.HandleFunc("DELETE /v1/sema/{id...}", s.bounded(s.semaRelease))
	mux.HandleFunc("GET /v1/deploys", s.bounded(s.listDeploys))
	mux.HandleFunc("POST /v1/deploys", s.bounded(s.postDeploy))
	mux.HandleFunc("GET /v1/deploys/{n}", s.bounded(s.getDeploy))
	mux.HandleFunc("POST /v1/deploys/{n}/rollback", s.bounded(s.rollback))
	// Without a method, these patterns only catch the methods the ones
	// above do not take; "/" catches every other path. Both answer JSON
	// rather than the mux's plain text.
	for path, allow := range map[string]string{
		"/v1/kv/{key...}": "GET, PUT, DELETE", "/v1/kv": "GET", "/v1/watch": "GET", "/v1/status": "GET", "/v1/resources": "GET", "/v1/graph": "GET",
		"/v1/join": "POST", "/v1/members": "GET", "/v1/leave": "POST",
		"/v1/sema/{id...}": "POST, DELETE", "/v1/deploys": "GET, POST", "/v1/deploys/{n}": "GET", "/v1/deploys/{n}/rollback": "POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not take %s", r.URL.Path, r.Method))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	// Browsers on this host must not drive the agent: a page could post to
	// a loopback API address (cross-site request forgery).
	s.handler = s.logged(loopbackHostOnly(http.NewCrossOriginProtection().Handler(noAsterisk(mux))))
	return s, nil
}

// shutdownGrace bounds how long Stop waits for requests in progress
// beyond the request timeout, and then for those it cancelled.
const shutdownGrace = time.Second

// Serve serves the API on every listener until ctx ends or a listener
// fails, then stops (see Stop: watches end at once, their streams get a
// last error object; other requests in progress are given the request
// timeout to finish) and closes the listeners (a unix socket's file is
// removed). It returns the error of a failed listener, or nil. Serve may
// be called once. A process that restarts its Server while it serves
// (the agent) serves through one Front instead.
func (s *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	first := false
	s.serveOnce.Do(func() { first = true })
	if !first {
		for _, ln := range lns {
			ln.Close()
		}
		return errors.New("api: Serve called twice")
	}
	f := NewFront(0, s.log)
	f.Set(s)
	return f.Serve(ctx, lns...)
}

// protocols are those the API serves on every listener: HTTP/1.1 (curl,
// any HTTP client) and HTTP/2 without TLS (h2c with prior knowledge, as
// api.Client and `curl --http2-prior-knowledge` speak it), whose
// requests share a connection.
func protocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// bounded gives a handler's context the request timeout.
func (s *Server) bounded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (to flush).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logged logs every request at debug, and failures at warn.
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		lvl := slog.LevelDebug
		if rec.code >= 500 {
			lvl = slog.LevelWarn
		}
		s.log.Log(r.Context(), lvl, "local API request", "method", r.Method, "path", r.URL.Path,
			"status", rec.code, "duration", time.Since(start))
	})
}

// loopbackHostOnly refuses requests that came in over TCP and name a host
// other than a loopback one: a web page that rebinds its DNS name to
// 127.0.0.1 cannot reach the API. Unix socket requests pass.
func loopbackHostOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, tcp := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); tcp && !api.IsLoopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("host %q is not a loopback address; the local API answers requests for 127.0.0.1, [::1] or localhost only", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// noAsterisk answers a request for "*" (GET * HTTP/1.1: ServeMux answers
// it 400 with no body) with a JSON error, as every other refusal.
func noAsterisk(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.RequestURI == "*" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s *: the local API answers requests for paths under /v1/", r.Method))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.ErrorBody{Error: msg})
}

// fail answers with err, mapped to a status code.
func fail(w http.ResponseWriter, err error) {
	writeError(w, statusFor(err), err.Error())
}

// badRequest marks an error as the client's fault.
type badRequest struct{ error }

func (b badRequest) Unwrap() error { return b.error }

func badf(format string, args ...any) error { return badRequest{fmt.Errorf(format, args...)} }

// statusFor maps an error to the status code it answers with.
func statusFor(err error) int {
	var bad badRequest
	switch {
	case errors.As(err, &bad), errors.Is(err, world.ErrReserved), errors.Is(err, world.ErrRefused):
		return http.StatusBadRequest
	case errors.Is(err, raftnode.ErrNoLeader), errors.Is(err, raftnode.ErrLeaderUnreachable), errors.Is(err, raftnode.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, raftnode.ErrAmbiguous), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, raftnode.ErrNoSpace):
		// The data dir of the node that would store the write (this
		// one's, or the leader's it was forwarded to) is full.
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// key returns the request's key, checked.
func key(r *http.Request) (string, error) { return pathName(r, "key", "", "key", fsm.MaxKeySize) }

// pathName returns the request's path value param, checked: not empty, at
// most max bytes, UTF-8. Errors name it as noun, after prefix.
func pathName(r *http.Request, param, prefix, noun string, max int) (string, error) {
	v := r.PathValue(param)
	switch {
	case v == "":
		return "", badf("%sempty %s", prefix, noun)
	case len(v) > max:
		return "", badf("%s%s of %d bytes: at most %d", prefix, noun, len(v), max)
	case !utf8.ValidString(v):
		return "", badf("%s%s %q is not valid UTF-8", prefix, noun, v)
	}
	return v, nil
}

// readOpts returns the read options the query asks for: linearizable if
// asked, or if the local state has not caught up yet (see current).
func (s *Server) readOpts(r *http.Request) ([]world.ReadOption, error) {
	lin := false
	if v := r.URL.Query().Get("linearizable"); v != "" {
		var err error
		if lin, err = strconv.ParseBool(v); err != nil {
			return nil, badf("linearizable=%q: want true or false", v)
		}
	}
	if lin || !s.caughtUp() {
		return []world.ReadOption{world.Linearizable()}, nil
	}
	return nil, nil
}

// readDone records that a read succeeded: if it was linearizable, the
// local state has caught up.
func (s *Server) readDone(opts []world.ReadOption) {
	if len(opts) > 0 {
		s.current.Store(true)
	}
}

// caughtUp reports whether the local state has applied what the node had
// when it started, or a linearizable read has brought it up to date since.
func (s *Server) caughtUp() bool {
	return s.current.Load() || (s.cfg.Node != nil && s.cfg.Node.CaughtUp())
}

// catchUp makes sure the local state has caught up since the agent
// started.
func (s *Server) catchUp(ctx context.Context) error {
	if s.caughtUp() {
		return nil
	}
	return s.barrier(ctx)
}

// barrier brings the local state up to date with the cluster: it then
// reflects every write committed before the call.
func (s *Server) barrier(ctx context.Context) error {
	// A linearizable read of any key (none is empty) does it.
	if _, _, err := s.cfg.Store.Get(ctx, "", world.Linearizable()); err != nil {
		return err
	}
	s.current.Store(true)
	return nil
}

// contact returns how recently the node heard from a leader, nil without
// a Node. Taken as a read begins, it bounds how old the state read is.
func (s *Server) contact() *api.Contact {
	if s.cfg.Node == nil {
		return nil
	}
	c := &api.Contact{LastContactMS: -1}
	if t := s.cfg.Node.LeaderContact(); !t.IsZero() {
		c.LastContactMS = max(0, time.Since(t).Milliseconds())
	}
	id, _ := s.cfg.Node.Leader()
	c.KnownLeader = id != ""
	return c
}

// setContact reports c in the answer's headers (none if c is nil).
func setContact(w http.ResponseWriter, c *api.Contact) {
	if c == nil {
		return
	}
	w.Header().Set(api.HeaderLastContact, strconv.FormatInt(c.LastContactMS, 10))
	w.Header().Set(api.HeaderKnownLeader, strconv.FormatBool(c.KnownLeader))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	k, err := key(r)
	if err != nil {
		fail(w, err)
		return
	}
	opts, err := s.readOpts(r)
	if err != nil {
		fail(w, err)
		return
	}
	c := s.contact()
	setContact(w, c)
	kv, ok, err := s.cfg.Store.Get(r.Context(), k, opts...)
	if err == nil {
		s.readDone(opts)
	}
	switch {
	case err != nil:
		fail(w, err)
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found", k))
	default:
		writeJSON(w, http.StatusOK, api.GetAnswer{KV: fromFSM(kv), Contact: c})
	}
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	k, err := key(r)
	if err != nil {
		fail(w, err)
		return
	}
	cas, conditional, err := writeParams(r)
	if err != nil {
		fail(w, err)
		return
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fsm.MaxValueSize))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value too large: at most %d bytes", fsm.MaxValueSize))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the value: %v", err))
		return
	}
	if conditional {
		sw, err := s.cfg.Store.PutIfRev(r.Context(), k, cas, value)
		answerSwap(w, k, cas, sw, err)
		return
	}
	rev, err := s.cfg.Store.Put(r.Context(), k, value)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Write{Rev: rev})
}

func (s *Server) del(w http.ResponseWriter, r *http.Request) {
	k, err := key(r)
	if err != nil {
		fail(w, err)
		return
	}
	cas, conditional, err := writeParams(r)
	if err != nil {
		fail(w, err)
		return
	}
	if conditional {
		sw, err := s.cfg.Store.DeleteIfRev(r.Context(), k, cas)
		answerSwap(w, k, cas, sw, err)
		return
	}
	rev, err := s.cfg.Store.Delete(r.Context(), k)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Write{Rev: rev})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	opts, err := s.readOpts(r)
	if err != nil {
		fail(w, err)
		return
	}
	c := s.contact()
	setContact(w, c)
	kvs, rev, err := s.cfg.Store.List(r.Context(), r.URL.Query().Get("prefix"), opts...)
	if err != nil {
		fail(w, err)
		return
	}
	s.readDone(opts)
	writeJSON(w, http.StatusOK, api.ListAnswer{List: api.List{Rev: rev, KVs: fromFSMList(kvs)}, Contact: c})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := api.Status{Host: s.cfg.Host, Version: s.cfg.Version, KeyFingerprint: s.cfg.KeyFingerprint,
		RaftStatus: fromStatus(s.cfg.Status())}
	if s.cfg.Cluster != nil {
		st.ClusterID, st.GossipAddr = s.cfg.Cluster.ClusterID(), s.cfg.Cluster.GossipAddr()
	}
	writeJSON(w, http.StatusOK, st)
}
