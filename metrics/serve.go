package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The limits of the metrics server, whose clients are on the network: a
// client gets this long to send its request headers and its whole request,
// a response this long to be written, an idle connection this long to send
// its next request; and a scrape this long to be gathered.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = time.Minute
	scrapeTimeout     = 20 * time.Second
	maxHeaderBytes    = 16 << 10
	// shutdownGrace is how long scrapes in flight may finish once the
	// server is asked to stop.
	shutdownGrace = 5 * time.Second
)

// Handler serves the collector's registry in Prometheus' exposition
// formats; errors gathering a series are logged to log (nil: discarded) and
// the other series still served.
func (c *Collector) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       scrapeTimeout,
	})
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.refreshStates()
		prom.ServeHTTP(w, r)
	}))
	return mux
}

// promLogger passes promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error("serving metrics", "err", fmt.Sprint(v...)) }

// Serve serves /metrics on ln until ctx ends, then lets scrapes in flight
// finish for a few seconds and closes ln. It returns nil once stopped by
// ctx, else why it stopped.
func (c *Collector) Serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           c.Handler(log),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
