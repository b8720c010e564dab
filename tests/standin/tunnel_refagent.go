package main

// `standin refagent`: a reference agent built from the real remotedialer
// client, to check the stand-in (and, later, to compare scaleagent with):
//
//   - the main tunnel: X-API-Tunnel-Token and X-API-Tunnel-Params, first on
//     /v3/connect/register and on /v3/connect once it has connected, like the
//     real agent; every Connect it gets is answered by the stream-test peer
//     (streamtest_peer.go), whatever the address;
//   - the steve tunnel: Authorization: Bearer stv-cluster-<token> on
//     /v3/connect; every Connect reaches an in-process HTTP server that
//     answers /ping with "pong" and anything else with a JSON echo of the
//     request.
//
// Both reconnect for ever (remotedialer's 5 s, plus --retry-delay). It
// prints {"refagent":true,"pid":N} on stdout once started and logs to
// stderr. SIGTERM or SIGINT stops it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rancher/remotedialer"
)

func init() {
	register("refagent", runRefAgent)
}

// pauseSignal counts the Pause messages a session sent and wakes waiters.
type pauseSignal struct {
	mu sync.Mutex
	n  int64
	ch chan struct{}
}

func newPauseSignal() *pauseSignal { return &pauseSignal{ch: make(chan struct{})} }

func (p *pauseSignal) bump() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	close(p.ch)
	p.ch = make(chan struct{})
}

func (p *pauseSignal) state() (int64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.ch
}

// waitAbove returns once more than n Pauses were sent, or ctx ends.
func (p *pauseSignal) waitAbove(ctx context.Context, n int64) {
	for {
		cur, ch := p.state()
		if cur > n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// pipeListener is an in-memory net.Listener fed by dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, network, address string) (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "steve" }

// refSteveHandler is the steve API of the reference agent.
func refSteveHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ping" {
		w.Write([]byte("pong"))
		return
	}
	headers := map[string]string{}
	for k := range r.Header {
		headers[k] = r.Header.Get(k)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"method":  r.Method,
		"path":    r.URL.Path,
		"query":   r.URL.RawQuery,
		"headers": headers,
	})
}

type refAgent struct {
	server      *url.URL
	token       string
	params      string
	tlsConfig   *tls.Config
	retryDelay  time.Duration
	register    bool
	pauses      *pauseSignal
	steveListen *pipeListener
}

// wsDialer dials the stand-in with a tap under the websocket, so the agent
// can see the Pause messages its own session sends.
func (a *refAgent) wsDialer(tap *wireTap) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: remotedialer.HandshakeTimeOut,
		NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := a.tlsConfig.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			conn := tls.Client(raw, cfg)
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return newTapConn(conn, nil, tap, true, true), nil
		},
	}
}

func (a *refAgent) wsURL(path string) string {
	u := *a.server
	u.Scheme = "wss"
	if a.server.Scheme == "http" {
		u.Scheme = "ws"
	}
	u.Path = path
	return u.String()
}

func (a *refAgent) runMain(ctx context.Context) {
	var connected atomic.Bool
	peerOpts := streamPeerOptions{
		sourceSizes: []int{1, 1000, 32768, 65536, 4096},
	}
	for ctx.Err() == nil {
		path := "/v3/connect/register"
		if connected.Load() || !a.register {
			path = "/v3/connect"
		}
		tap := newWireTap()
		tap.onMessage = func(out bool, typ int64) {
			if out && typ == rdPause {
				a.pauses.bump()
			}
		}
		local := func(dctx context.Context, network, address string) (net.Conn, error) {
			before, _ := a.pauses.state()
			opts := peerOpts
			opts.sinkGate = func(gctx context.Context) { a.pauses.waitAbove(gctx, before) }
			ours, theirs := net.Pipe()
			go func() {
				if err := serveStreamTestPeer(ctx, theirs, opts); err != nil {
					slog.Warn("stream-test peer failed", "address", address, "error", err)
				}
			}()
			return ours, nil
		}
		headers := http.Header{tunnelTokenHeader: {a.token}, tunnelParamsHeader: {a.params}}
		err := remotedialer.ConnectToProxyWithDialer(ctx, a.wsURL(path), headers, allowAnyConnect, a.wsDialer(tap), local,
			func(context.Context, *remotedialer.Session) error {
				connected.Store(true)
				slog.Info("main tunnel connected", "path", path)
				return nil
			})
		slog.Info("main tunnel ended", "error", err)
		a.pause(ctx, err)
	}
}

func (a *refAgent) runSteve(ctx context.Context) {
	headers := http.Header{"Authorization": {"Bearer " + steveKeyPrefix + a.token}}
	for ctx.Err() == nil {
		err := remotedialer.ConnectToProxyWithDialer(ctx, a.wsURL(strings.TrimSuffix(a.server.Path, "/")+"/v3/connect"),
			headers, allowAnyConnect, a.wsDialer(newWireTap()), a.steveListen.dial,
			func(context.Context, *remotedialer.Session) error {
				slog.Info("steve tunnel connected")
				return nil
			})
		slog.Info("steve tunnel ended", "error", err)
		a.pause(ctx, err)
	}
}

// pause waits between attempts: remotedialer's 5 s after a failed
// connection (ClientConnect does that too), then --retry-delay.
func (a *refAgent) pause(ctx context.Context, err error) {
	delay := a.retryDelay
	if err != nil && !errors.Is(err, context.Canceled) {
		delay += 5 * time.Second
	}
	select {
	case <-ctx.Done():
	case <-time.After(delay):
	}
}

func allowAnyConnect(proto, address string) bool { return true }

func runRefAgent(args []string) error {
	fs := flag.NewFlagSet("refagent", flag.ContinueOnError)
	server := fs.String("server", "", "stand-in URL (https://host:port)")
	token := fs.String("token", "", "cluster registration token")
	caFile := fs.String("cacert", "", "PEM file of the CA to trust (default: system roots)")
	insecure := fs.Bool("insecure", false, "do not verify the server certificate")
	address := fs.String("address", "10.43.0.1:443", "params: the downstream API address")
	saToken := fs.String("sa-token", "refagent-service-account-token", "params: the service account token")
	caParam := fs.String("ca-param", "", "params: base64 of the downstream CA PEM (default: base64 of --cacert's PEM, or a placeholder)")
	mainTunnel := fs.Bool("main", true, "open the main tunnel")
	steveTunnel := fs.Bool("steve", true, "open the steve tunnel")
	registerPath := fs.Bool("register", true, "use /v3/connect/register until the first connect, as the real agent")
	retryDelay := fs.Duration("retry-delay", 0, "extra wait before reconnecting (the real agent: 5s)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := setupLogging(*logLevel); err != nil {
		return err
	}
	if *server == "" || *token == "" {
		return errors.New("--server and --token are required")
	}
	u, err := url.Parse(*server)
	if err != nil {
		return err
	}
	cfg := &tls.Config{InsecureSkipVerify: *insecure}
	var caPEM []byte
	if *caFile != "" {
		if caPEM, err = os.ReadFile(*caFile); err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return fmt.Errorf("%s holds no PEM certificate", *caFile)
		}
		cfg.RootCAs = pool
	}
	ca := *caParam
	if ca == "" {
		if len(caPEM) == 0 {
			caPEM = []byte("refagent placeholder CA")
		}
		ca = base64.StdEncoding.EncodeToString(caPEM)
	}
	params, err := json.Marshal(map[string]map[string]string{
		"cluster": {"address": *address, "token": *saToken, "caCert": ca},
	})
	if err != nil {
		return err
	}
	a := &refAgent{
		server:      u,
		token:       *token,
		params:      base64.StdEncoding.EncodeToString(params),
		tlsConfig:   cfg,
		retryDelay:  *retryDelay,
		register:    *registerPath,
		pauses:      newPauseSignal(),
		steveListen: newPipeListener(),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	steveServer := &http.Server{Handler: http.HandlerFunc(refSteveHandler)}
	// Like steve's aggregation server: one request per tunnelled connection.
	steveServer.SetKeepAlivesEnabled(false)
	go steveServer.Serve(a.steveListen)
	var wg sync.WaitGroup
	if *mainTunnel {
		wg.Add(1)
		go func() { defer wg.Done(); a.runMain(ctx) }()
	}
	if *steveTunnel {
		wg.Add(1)
		go func() { defer wg.Done(); a.runSteve(ctx) }()
	}
	ready, _ := json.Marshal(map[string]any{"refagent": true, "pid": os.Getpid()})
	os.Stdout.Write(append(ready, '\n'))
	wg.Wait()
	steveServer.Close()
	return nil
}
