package main

// `standin serve`: a Rancher stand-in. It terminates both agent tunnels of
// every registered cluster in a real remotedialer server, behind an HTTPS
// listener whose certificate comes from its own CA, and offers a plain-HTTP
// control API to tests. On start it prints one JSON line to stdout:
//
//	{"url":"https://127.0.0.1:PORT","control":"http://127.0.0.1:PORT2","cacerts":"<PEM>","checksum":"<hex>","pid":N}
//
// and logs to stderr. SIGTERM or SIGINT stops it after saving its state.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func init() {
	register("serve", runServe)
}

// readinessHooks add keys to the readiness JSON line (after the serve
// extensions ran).
var readinessHooks []func(s *Standin, ready map[string]any)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func setupLogging(level string) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})))
	return nil
}

// advertisedHost is the host a client should use for a listener.
func advertisedHost(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var opts serveOptions
	var sans stringList
	fs.StringVar(&opts.listen, "listen", "127.0.0.1:0", "HTTPS address (the Rancher URL)")
	fs.StringVar(&opts.controlListen, "control-listen", "127.0.0.1:0", "plain-HTTP address of the test-control API")
	fs.StringVar(&opts.stateDir, "state-dir", "", "directory keeping the CA and the clusters across restarts (empty: keep nothing)")
	fs.DurationVar(&opts.pingInterval, "ping-interval", 15*time.Second, "period of the Connected check (GET /ping through the steve tunnel); 0 disables it")
	fs.DurationVar(&opts.pingTimeout, "ping-timeout", 0, "HTTP timeout of one Connected check (0: none, as Rancher)")
	fs.IntVar(&opts.pingConcurrency, "ping-concurrency", 1, "clusters checked at once (1: one after the other, as Rancher)")
	fs.Var(&sans, "san", "extra host name or IP for the serving certificate (repeatable)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	for _, hook := range serveFlagHooks {
		hook(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := setupLogging(*logLevel); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s := newStandin(ctx, opts)
	if err := s.loadState(opts.stateDir); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return err
	}
	cln, err := net.Listen("tcp", opts.controlListen)
	if err != nil {
		return err
	}
	s.URL = "https://" + advertisedHost(ln.Addr())
	s.ControlURL = "http://" + advertisedHost(cln.Addr())

	hosts := append([]string{"127.0.0.1", "::1", "localhost"}, sans...)
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host != "" {
		hosts = append(hosts, host)
	}
	cert, err := s.ca.issueServing(hosts)
	if err != nil {
		return err
	}

	mux := s.rancherMux()
	for _, ext := range serveExtensions {
		ext(s, mux)
	}
	errorLog := slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			// Websockets need HTTP/1.1; every agent asks for it.
			NextProtos: []string{"http/1.1"},
		},
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          errorLog,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	csrv := &http.Server{
		Handler:           s.controlMux(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          errorLog,
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	go func() { serveErr <- csrv.Serve(cln) }()
	go s.runSaver()
	go s.runPingLoop()

	readyLine := map[string]any{
		"url":      s.URL,
		"control":  s.ControlURL,
		"cacerts":  s.cacerts,
		"checksum": s.checksum,
		"pid":      os.Getpid(),
	}
	for _, hook := range readinessHooks {
		hook(s, readyLine)
	}
	ready, err := json.Marshal(readyLine)
	if err != nil {
		return err
	}
	os.Stdout.Write(append(ready, '\n'))
	slog.Info("standin serving", "url", s.URL, "control", s.ControlURL, "stateDir", opts.stateDir)

	select {
	case <-ctx.Done():
		err = nil
	case err = <-serveErr:
	}
	slog.Info("standin stopping")
	srv.Close()
	csrv.Close()
	s.closeAllSessions()
	if ferr := s.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}
