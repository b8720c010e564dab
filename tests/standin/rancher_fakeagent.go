package main

// `standin fakeagent`: a cluster agent built from the real remotedialer
// client that puts a real Kubernetes API server behind a stand-in cluster,
// to check the Rancher emulation end to end:
//
//   - the main tunnel announces --address (the address Rancher dials, e.g.
//     10.43.0.1:443, which the API server's certificate must match) and
//     forwards every Connect to --forward (where that API server listens);
//   - the steve tunnel answers GET /ping; --steve says when it opens:
//     "always" (at once), "never", or "redeploy" (like the real agent: only
//     once Rancher applied the agent with multi-cluster-management-agent=true,
//     switching both tunnels to the token of the applied credentials).
//
// It prints {"fakeagent":true,"pid":N} on stdout once started.

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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func init() {
	register("fakeagent", runFakeAgent)
}

type fakeAgent struct {
	server  *url.URL
	tls     *tls.Config
	params  string
	forward string
	steve   string
	kube    kubernetes.Interface

	mu        sync.Mutex
	token     string
	tokenGen  chan struct{}
	steveOn   chan struct{}
	steveOnce sync.Once
}

func runFakeAgent(args []string) error {
	fs := flag.NewFlagSet("fakeagent", flag.ContinueOnError)
	server := fs.String("server", "", "stand-in URL (https://host:port)")
	token := fs.String("token", "", "cluster registration token")
	caFile := fs.String("cacert", "", "PEM file of the stand-in's CA (default: system roots)")
	address := fs.String("address", "10.43.0.1:443", "the API address announced in the tunnel params")
	forward := fs.String("forward", "", "where that API server really listens (default: --address)")
	saToken := fs.String("sa-token", "", "bearer token announced for the API server")
	apiCA := fs.String("api-ca", "", "PEM file of the API server's CA (announced as caCert)")
	steve := fs.String("steve", "redeploy", "when to open the steve tunnel: always, never or redeploy")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := setupLogging(*logLevel); err != nil {
		return err
	}
	if *server == "" || *token == "" || *saToken == "" || *apiCA == "" {
		return errors.New("--server, --token, --sa-token and --api-ca are required")
	}
	if *forward == "" {
		*forward = *address
	}
	switch *steve {
	case "always", "never", "redeploy":
	default:
		return fmt.Errorf("--steve must be always, never or redeploy")
	}
	u, err := url.Parse(*server)
	if err != nil {
		return err
	}
	cfg := &tls.Config{}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no certificate", *caFile)
		}
		cfg.RootCAs = pool
	}
	caPEM, err := os.ReadFile(*apiCA)
	if err != nil {
		return err
	}
	params, err := json.Marshal(map[string]map[string]string{"cluster": {
		"address": *address, "token": *saToken, "caCert": base64.StdEncoding.EncodeToString(caPEM),
	}})
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*address)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(&rest.Config{
		Host:            "https://" + *forward,
		BearerToken:     *saToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, ServerName: host},
		Timeout:         15 * time.Second,
	})
	if err != nil {
		return err
	}
	a := &fakeAgent{
		server: u, tls: cfg, params: base64.StdEncoding.EncodeToString(params),
		forward: *forward, steve: *steve, kube: kube, token: *token,
		tokenGen: make(chan struct{}), steveOn: make(chan struct{}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if a.steve == "always" {
		a.openSteve()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.runMain(ctx) }()
	go func() { defer wg.Done(); a.runSteve(ctx) }()
	if a.steve == "redeploy" {
		go a.watchRedeploy(ctx)
	}
	ready, _ := json.Marshal(map[string]any{"fakeagent": true, "pid": os.Getpid()})
	os.Stdout.Write(append(ready, '\n'))
	wg.Wait()
	return nil
}

func (a *fakeAgent) currentToken() (string, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token, a.tokenGen
}

func (a *fakeAgent) openSteve() { a.steveOnce.Do(func() { close(a.steveOn) }) }

func (a *fakeAgent) wsURL(path string) string {
	u := *a.server
	u.Scheme = "wss"
	u.Path = path
	return u.String()
}

func (a *fakeAgent) dialer() *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: remotedialer.HandshakeTimeOut, TLSClientConfig: a.tls}
}

// runMain keeps the main tunnel up; a new token (after a redeploy)
// reconnects it, on /v3/connect/register as a new agent pod would.
func (a *fakeAgent) runMain(ctx context.Context) {
	var connected atomic.Bool
	for ctx.Err() == nil {
		token, changed := a.currentToken()
		path := "/v3/connect/register"
		if connected.Load() {
			path = "/v3/connect"
		}
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				connected.Store(false)
				cancel()
			case <-sctx.Done():
			}
		}()
		headers := http.Header{tunnelTokenHeader: {token}, tunnelParamsHeader: {a.params}}
		err := remotedialer.ConnectToProxyWithDialer(sctx, a.wsURL(path), headers, allowAnyConnect, a.dialer(),
			func(dctx context.Context, network, address string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(dctx, "tcp", a.forward)
			},
			func(context.Context, *remotedialer.Session) error {
				connected.Store(true)
				slog.Info("fakeagent: main tunnel connected", "path", path)
				return nil
			})
		cancel()
		slog.Info("fakeagent: main tunnel ended", "error", err)
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// runSteve opens the steve tunnel once allowed and keeps it up.
func (a *fakeAgent) runSteve(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-a.steveOn:
	}
	ln := newPipeListener()
	srv := &http.Server{Handler: http.HandlerFunc(refSteveHandler)}
	srv.SetKeepAlivesEnabled(false)
	go srv.Serve(ln)
	defer srv.Close()
	for ctx.Err() == nil {
		token, changed := a.currentToken()
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-sctx.Done():
			}
		}()
		headers := http.Header{"Authorization": {"Bearer " + steveKeyPrefix + token}}
		err := remotedialer.ConnectToProxyWithDialer(sctx, a.wsURL("/v3/connect"), headers, allowAnyConnect, a.dialer(), ln.dial,
			func(context.Context, *remotedialer.Session) error {
				slog.Info("fakeagent: steve tunnel connected")
				return nil
			})
		cancel()
		slog.Info("fakeagent: steve tunnel ended", "error", err)
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// watchRedeploy waits for Rancher's agent Deployment with
// multi-cluster-management-agent=true, then takes the token of its
// credentials Secret and opens the steve tunnel.
func (a *fakeAgent) watchRedeploy(ctx context.Context) {
	for ctx.Err() == nil {
		d, err := a.kube.AppsV1().Deployments("cattle-system").Get(ctx, "cattle-cluster-agent", metav1.GetOptions{})
		if err == nil {
			secret, features := "", ""
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					switch e.Name {
					case "CATTLE_FEATURES":
						features = e.Value
					case "CATTLE_CREDENTIAL_NAME":
						secret = e.Value
					}
				}
			}
			if strings.Contains(features, "multi-cluster-management-agent=true") && secret != "" {
				s, err := a.kube.CoreV1().Secrets("cattle-system").Get(ctx, secret, metav1.GetOptions{})
				if err == nil && len(s.Data["token"]) > 0 {
					a.mu.Lock()
					if a.token != string(s.Data["token"]) {
						a.token = string(s.Data["token"])
						close(a.tokenGen)
						a.tokenGen = make(chan struct{})
					}
					a.mu.Unlock()
					slog.Info("fakeagent: agent redeployed by Rancher; restarting with its token", "secret", secret)
					a.openSteve()
					return
				}
			}
		} else if !apierrors.IsNotFound(err) {
			slog.Debug("fakeagent: reading the agent deployment", "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}
