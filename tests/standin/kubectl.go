package main

// kubectl, built from k8s.io/kubectl (the version Rancher ships) and run
// in-process, the way Rancher's clusterdeploy controller runs
// `kubectl --kubeconfig … apply -f <file>` against a downstream cluster
// through its tunnel (rancher-server-side.md §9.1).
//
//   - `standin kubectl <kubectl args…>`: plain kubectl.
//   - runKubectl(ctx, target, args…): kubectl against a KubectlTarget, which
//     may be reached through a dial function (a remotedialer tunnel): a
//     loopback listener forwards raw bytes to the dialled connection, so TLS
//     stays end to end and the kubeconfig verifies the server certificate
//     against tls-server-name (the announced address).

import (
	"bytes"
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

func init() {
	register("kubectl", kubectlMain)
}

// kubectlMain is `standin kubectl …`: kubectl itself, exit code included.
func kubectlMain(args []string) error {
	code := kubectlExec(context.Background(), args, os.Stdin, os.Stdout, os.Stderr, nil)
	if code != 0 {
		os.Exit(code)
	}
	return nil
}

// kubectlMu serialises in-process kubectl runs: kubectl keeps process-wide
// state (its fatal-error handler, the default warning handler, klog flags).
var kubectlMu sync.Mutex

// kubectlExit carries kubectl's exit code out of its fatal-error handler.
type kubectlExit struct{ code int }

// kubectlExec runs kubectl with args (without the program name) and
// returns its exit code. kubectl's own os.Exit on errors is turned into a
// return. wrap, when set, wraps kubectl's HTTP transport (to observe its
// requests).
func kubectlExec(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, wrap func(http.RoundTripper) http.RoundTripper) (code int) {
	kubectlMu.Lock()
	defer kubectlMu.Unlock()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	streams := genericiooptions.IOStreams{In: stdin, Out: stdout, ErrOut: stderr}
	cmdutil.BehaviorOnFatal(func(msg string, code int) {
		if msg != "" {
			if !strings.HasSuffix(msg, "\n") {
				msg += "\n"
			}
			fmt.Fprint(stderr, msg)
		}
		panic(kubectlExit{code})
	})
	defer cmdutil.DefaultBehaviorOnFatal()
	// kubectl installs a warning handler writing to this run's stderr;
	// put client-go's default back afterwards.
	defer rest.SetDefaultWarningHandler(rest.WarningLogger{})
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(kubectlExit); ok {
				code = e.code
				return
			}
			fmt.Fprintf(stderr, "kubectl panicked: %v\n", p)
			code = 2
		}
	}()

	configFlags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().
		WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams).
		WithWrapConfigFn(func(c *rest.Config) *rest.Config {
			if c.UserAgent == "" {
				c.UserAgent = kubectlUserAgent()
			}
			if wrap != nil {
				c.Wrap(wrap)
			}
			return c
		})
	cmd := kubectlcmd.NewKubectlCommand(kubectlcmd.KubectlOptions{
		Arguments:   append([]string{"kubectl"}, args...),
		ConfigFlags: configFlags,
		IOStreams:   streams,
	})
	// klog's flags (-v and friends), as kubectl's main adds them.
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	cmd.PersistentFlags().AddGoFlagSet(klogFlags)
	cmd.SetArgs(args)
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		cmdutil.CheckErr(err) // prints like kubectl and "exits" through the handler
		return 1
	}
	return 0
}

// kubectlUserAgent is what a released kubectl of the linked version sends
// ("kubectl/v1.35.6 (linux/amd64) kubernetes/…"); a `go build` of the
// stand-in carries no version stamp of its own.
func kubectlUserAgent() string {
	version := "v0.0.0"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "k8s.io/kubectl" {
				version = m.Version
				if m.Replace != nil {
					version = m.Replace.Version
				}
			}
		}
	}
	// staging modules are v0.X.Y for Kubernetes v1.X.Y
	if strings.HasPrefix(version, "v0.") {
		version = "v1." + strings.TrimPrefix(version, "v0.")
	}
	return fmt.Sprintf("kubectl/%s (%s/%s) kubernetes/unknown", version, runtime.GOOS, runtime.GOARCH)
}

// KubectlTarget says how kubectl reaches one cluster's API and as whom.
type KubectlTarget struct {
	// Server is the API URL (https://host:port). With Dial set it only
	// supplies the default TLS server name.
	Server string
	// Dial, when set, opens a raw connection to the API server (through a
	// tunnel); kubectl then talks to a loopback listener that forwards to
	// it. TLS is end to end.
	Dial func(ctx context.Context) (net.Conn, error)
	// TLSServerName is what the serving certificate must match (an IP for
	// an IP SAN); defaults to Server's host.
	TLSServerName string
	// CAData is the PEM bundle that signs the serving certificate; with
	// none, Insecure must be set.
	CAData   []byte
	Insecure bool
	// Token authenticates (Authorization: Bearer).
	Token string
	// Impersonation, as Rancher's proxy adds it: Impersonate-User,
	// Impersonate-Group, Impersonate-Extra-<key>.
	ImpersonateUser   string
	ImpersonateGroups []string
	ImpersonateExtra  map[string][]string
	// Namespace is the kubeconfig context's default namespace.
	Namespace string
}

// KubectlResult is one kubectl run.
type KubectlResult struct {
	Args     []string      `json:"args"`
	ExitCode int           `json:"exitCode"`
	Stdout   string        `json:"stdout"`
	Stderr   string        `json:"stderr"`
	Duration time.Duration `json:"duration"`
	// Requests lists what kubectl asked the server, in order:
	// "METHOD path?sorted-query-keys -> status".
	Requests []string `json:"requests"`
}

// kubectlRequestLog records kubectl's requests.
type kubectlRequestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *kubectlRequestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return kubectlRoundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		line := req.Method + " " + req.URL.Path
		if q := req.URL.Query(); len(q) > 0 {
			var keys []string
			for k := range q {
				if k == "fieldManager" || k == "fieldValidation" {
					k += "=" + q.Get(k)
				}
				keys = append(keys, k)
			}
			sort.Strings(keys)
			line += "?" + strings.Join(keys, "&")
		}
		if ct := req.Header.Get("Content-Type"); ct != "" {
			line += " [" + ct + "]"
		}
		if err != nil {
			line += " -> error"
		} else {
			line += fmt.Sprintf(" -> %d", resp.StatusCode)
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, line)
		l.mu.Unlock()
		return resp, err
	})
}

type kubectlRoundTripper func(*http.Request) (*http.Response, error)

func (f kubectlRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Err is nil for exit code 0 and otherwise carries kubectl's stderr.
func (r KubectlResult) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	return fmt.Errorf("kubectl %s: exit %d: %s", strings.Join(r.Args, " "), r.ExitCode, strings.TrimSpace(r.Stderr))
}

// runKubectl runs `kubectl <args>` against target with a temporary
// kubeconfig and discovery cache (nothing is read from or written to the
// user's ~/.kube). With target.Dial set, a loopback forwarder lives for the
// duration of the run. The returned error is about setting up the run;
// kubectl's own failure is in the result (see KubectlResult.Err).
func runKubectl(ctx context.Context, target KubectlTarget, args ...string) (KubectlResult, error) {
	dir, err := os.MkdirTemp("", "standin-kubectl-")
	if err != nil {
		return KubectlResult{}, err
	}
	defer os.RemoveAll(dir)

	server := target.Server
	if target.Dial != nil {
		fwd, err := newKubectlForwarder(ctx, target.Dial)
		if err != nil {
			return KubectlResult{}, err
		}
		defer fwd.Close()
		server = "https://" + fwd.Addr()
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := kubectlWriteConfig(kubeconfig, server, target); err != nil {
		return KubectlResult{}, err
	}
	full := append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)
	var stdout, stderr bytes.Buffer
	var log kubectlRequestLog
	start := time.Now()
	code := kubectlExec(ctx, full, nil, &stdout, &stderr, log.wrap)
	return KubectlResult{Args: args, ExitCode: code, Stdout: stdout.String(), Stderr: stderr.String(),
		Duration: time.Since(start), Requests: log.reqs}, nil
}

// kubectlApply is what Rancher's clusterdeploy runs: `kubectl apply -f
// <manifest>` (client-side apply, validation strict by default).
func kubectlApply(ctx context.Context, target KubectlTarget, manifest string, extra ...string) (KubectlResult, error) {
	return runKubectl(ctx, target, append([]string{"apply", "-f", manifest}, extra...)...)
}

// kubectlWriteConfig writes a one-context kubeconfig for target, reached at
// server.
func kubectlWriteConfig(path, server string, t KubectlTarget) error {
	serverName := t.TLSServerName
	if serverName == "" && t.Dial != nil && t.Server != "" {
		// through the forwarder the URL host is 127.0.0.1; verify the
		// certificate against the real server's host instead
		if h, err := kubectlURLHost(t.Server); err == nil {
			serverName = h
		}
	}
	if len(t.CAData) == 0 && !t.Insecure {
		return errors.New("kubectl target: CAData or Insecure is required")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: t.CAData,
		InsecureSkipTLSVerify:    t.Insecure && len(t.CAData) == 0,
		TLSServerName:            serverName,
	}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		Token:                t.Token,
		Impersonate:          t.ImpersonateUser,
		ImpersonateGroups:    t.ImpersonateGroups,
		ImpersonateUserExtra: t.ImpersonateExtra,
	}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user", Namespace: t.Namespace}
	cfg.CurrentContext = "default"
	return clientcmd.WriteToFile(*cfg, path)
}

func kubectlURLHost(u string) (string, error) {
	rest := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	host, _, err := net.SplitHostPort(rest)
	if err != nil {
		return rest, nil // no port
	}
	return host, nil
}

// kubectlForwarder accepts loopback connections and splices each to a
// freshly dialled connection.
type kubectlForwarder struct {
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// newKubectlForwarder listens on 127.0.0.1 (a free port) until Close or
// ctx ends.
func newKubectlForwarder(ctx context.Context, dial func(ctx context.Context) (net.Conn, error)) (*kubectlForwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &kubectlForwarder{ln: ln, dial: dial, conns: map[net.Conn]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go f.accept()
	go func() {
		<-f.ctx.Done()
		_ = ln.Close()
	}()
	return f, nil
}

// Addr is host:port of the loopback listener.
func (f *kubectlForwarder) Addr() string { return f.ln.Addr().String() }

// Close stops listening, closes every forwarded connection and waits.
func (f *kubectlForwarder) Close() {
	f.cancel()
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *kubectlForwarder) track(c net.Conn, on bool) {
	f.mu.Lock()
	if on {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
	f.mu.Unlock()
}

func (f *kubectlForwarder) accept() {
	defer f.wg.Done()
	for {
		local, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.serve(local)
	}
}

func (f *kubectlForwarder) serve(local net.Conn) {
	defer f.wg.Done()
	f.track(local, true)
	defer f.track(local, false)
	defer local.Close()
	dctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	remote, err := f.dial(dctx)
	cancel()
	if err != nil {
		return
	}
	f.track(remote, true)
	defer f.track(remote, false)
	defer remote.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// propagate EOF where the connection supports half-close
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(remote, local)
	go pipe(local, remote)
	<-done
	<-done
}

// RESTConfig returns a client-go config reaching the same server as the
// target, the way Rancher's own client does (HTTP/1.1 only, the dial
// function for the transport, TLS verified against TLSServerName), for
// runKubeSuite.
func (t KubectlTarget) RESTConfig() *rest.Config {
	cfg := &rest.Config{Host: t.Server, BearerToken: t.Token}
	cfg.TLSClientConfig = rest.TLSClientConfig{
		CAData:     t.CAData,
		Insecure:   t.Insecure && len(t.CAData) == 0,
		ServerName: t.TLSServerName,
		NextProtos: []string{"http/1.1"},
	}
	if t.Dial != nil {
		dial := t.Dial
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	}
	if t.ImpersonateUser != "" || len(t.ImpersonateGroups) > 0 {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: t.ImpersonateUser, Groups: t.ImpersonateGroups, Extra: t.ImpersonateExtra}
	}
	return cfg
}
