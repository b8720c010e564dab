package main

// kubesuite: drive a Kubernetes API server with the client libraries Rancher
// ships (client-go v0.35) and record, check by check, whether it behaves like
// a real kube-apiserver. The suite is the acceptance test for scaleagent's
// synthetic API: run against a real kube-apiserver it produces the reference
// transcript (tests/fixtures/kube-reference/), run against scaleagent it
// must pass and its normalised transcript must diff cleanly against that
// reference.
//
// Entry points:
//   - `standin kubesuite --server https://… --token … --ca-file …` (CLI);
//   - runKubeSuite(ctx, cfg, opts) for the Rancher emulation, which passes a
//     *rest.Config whose Dial goes through a remotedialer tunnel.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// KubeSuiteOptions tunes a suite run. The zero value is a full run with
// defaults suitable for scaleagent.
type KubeSuiteOptions struct {
	// RunID makes the names of everything the suite creates unique, so the
	// suite can run against the same server repeatedly. Lower-cased, cut to
	// alphanumerics and 8 characters; random (6 hex digits) when empty or
	// shorter than 4 (transcripts replace it by "<run>" wherever it occurs).
	RunID string
	// Only, when not empty, restricts the run to checks whose name starts
	// with one of these prefixes (e.g. "informers/", "crud/patch").
	Only []string
	// Skip excludes checks whose name starts with one of these prefixes.
	Skip []string
	// RancherOnly skips the "strict" checks (fidelity beyond what Rancher
	// and its kubectl apply depend on).
	RancherOnly bool
	// ReferenceServer relaxes the few checks where scaleagent is required to
	// be faster than a real cluster: a real kube-apiserver leaves data.token
	// of a service-account-token Secret empty in the create response (the
	// token controller in kube-controller-manager fills it moments later).
	ReferenceServer bool
	// SyncTimeout bounds informer cache sync and event delivery waits
	// (default 15s).
	SyncTimeout time.Duration
	// NamespaceDeleteTimeout bounds the wait for a deleted namespace to
	// disappear (default 30s). A real apiserver needs
	// kube-controller-manager's namespace controller for this.
	NamespaceDeleteTimeout time.Duration
	// Logf receives progress lines; nil is silent.
	Logf func(format string, args ...any)
}

// KubeSuiteResult is the outcome of one run. Its JSON form is what
// `standin kubesuite --json` prints.
type KubeSuiteResult struct {
	Server        string            `json:"server,omitempty"`
	RunID         string            `json:"runId"`
	Started       time.Time         `json:"started"`
	DurationMS    int64             `json:"durationMs"`
	Passed        int               `json:"passed"`
	Failed        int               `json:"failed"`
	Skipped       int               `json:"skipped"`
	FailedByLevel map[string]int    `json:"failedByLevel"`
	Checks        []KubeCheckResult `json:"checks"`
}

// KubeCheckResult is one check. Level is "rancher" when Rancher (or the
// kubectl apply it runs) depends on the behaviour, and "strict" when only a
// real cluster's fidelity is at stake.
type KubeCheckResult struct {
	Name       string `json:"name"`
	Level      string `json:"level"`
	Status     string `json:"status"` // pass | fail | skip
	Detail     string `json:"detail,omitempty"`
	DurationMS int64  `json:"durationMs"`
	// Transcript holds normalised observations (server answers with uids,
	// resourceVersions, timestamps, generated names, tokens and hashes
	// replaced by placeholders).
	Transcript []KubeTranscriptEntry `json:"transcript,omitempty"`
	// HTTP lists the requests the check made, normalised the same way.
	HTTP []KubeHTTPExchange `json:"http,omitempty"`
}

// KubeTranscriptEntry is one normalised observation of a check.
type KubeTranscriptEntry struct {
	Step  string `json:"step"`
	Value any    `json:"value,omitempty"`
}

// KubeHTTPExchange is one request made during a check, normalised.
type KubeHTTPExchange struct {
	Method       string `json:"method"`
	Path         string `json:"path"`
	Query        string `json:"query,omitempty"`
	RequestType  string `json:"requestType,omitempty"`
	Accept       string `json:"accept,omitempty"`
	Status       int    `json:"status"`
	ResponseType string `json:"responseType,omitempty"`
	Error        string `json:"error,omitempty"`
	// Repeated: the same request was made again right after (polling).
	Repeated bool `json:"repeated,omitempty"`
}

// Ok reports whether no check failed.
func (r KubeSuiteResult) Ok() bool { return r.Failed == 0 }

// Transcript returns the normalised, timing-free part of the result, keyed
// by check name: what is committed as a reference and diffed between
// servers.
func (r KubeSuiteResult) Transcript() map[string]any {
	out := map[string]any{}
	for _, c := range r.Checks {
		if c.Status == "skip" {
			continue
		}
		entry := map[string]any{"status": c.Status}
		if len(c.Transcript) > 0 {
			entry["transcript"] = c.Transcript
		}
		if len(c.HTTP) > 0 {
			entry["http"] = c.HTTP
		}
		out[c.Name] = entry
	}
	return out
}

// kubeCheckDef declares one check.
type kubeCheckDef struct {
	name  string
	level string
	run   func(c *kubeCheck) error
}

// kubeSuiteUserAgent is sent when the caller's config sets none; its first
// word is the field manager name servers record.
const kubeSuiteUserAgent = "kubesuite/v0.35.6 (scaleagent standin)"

const (
	kubeLevelRancher = "rancher"
	kubeLevelStrict  = "strict"
)

// kubeSuite is the state shared by the checks of one run.
type kubeSuite struct {
	opts   KubeSuiteOptions
	cfg    *rest.Config // recording, as given by the caller
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	http   *http.Client
	host   string
	run    string // run id
	prefix string // "ks-<run>": every name the suite creates starts with it
	ns     string // the run's namespace
	rec    *kubeRecorder
	norm   *kubeNormaliser
	logf   func(format string, args ...any)

	mu       sync.Mutex
	cleanups []func(ctx context.Context)
	// values carried from one check to a later one
	nodeName        string
	imp             *kubeImpersonation
	deletingNS      string
	deletingNSStart time.Time
}

// kubeCheck is the handle a running check uses.
type kubeCheck struct {
	s   *kubeSuite
	ctx context.Context
	res *KubeCheckResult
	mu  sync.Mutex
	// failures collects non-fatal failures; the check fails if any.
	failures []string
}

type kubeCheckKey struct{}

// quiet returns the check's context with HTTP recording off, for requests
// whose number or outcome depends on timing or on what the server held
// before the run (polls, "ensure" calls).
func (c *kubeCheck) quiet() context.Context {
	return context.WithValue(c.ctx, kubeCheckKey{}, "")
}

// record adds a normalised observation to the check's transcript.
func (c *kubeCheck) record(step string, v any) {
	n := c.s.norm.value(v)
	c.mu.Lock()
	c.res.Transcript = append(c.res.Transcript, KubeTranscriptEntry{Step: step, Value: n})
	c.mu.Unlock()
}

// failf records a failure and lets the check continue.
func (c *kubeCheck) failf(format string, args ...any) {
	c.mu.Lock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

// expect records a failure unless cond holds; it returns cond.
func (c *kubeCheck) expect(cond bool, format string, args ...any) bool {
	if !cond {
		c.failf(format, args...)
	}
	return cond
}

// runKubeSuite runs the suite against the API server cfg points at. cfg may
// dial through a tunnel (cfg.Dial); it is copied, never modified. Checks run
// in a fixed order; everything created is removed at the end (namespaces and
// a CRD are deleted; a real server finishes those asynchronously).
func runKubeSuite(ctx context.Context, cfg *rest.Config, opts KubeSuiteOptions) KubeSuiteResult {
	started := time.Now()
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 15 * time.Second
	}
	if opts.NamespaceDeleteTimeout <= 0 {
		opts.NamespaceDeleteTimeout = 30 * time.Second
	}
	runID := kubeSanitiseRunID(opts.RunID)
	if runID == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		runID = hex.EncodeToString(b[:])
	}
	result := KubeSuiteResult{Server: cfg.Host, RunID: runID, Started: started.UTC(), FailedByLevel: map[string]int{}}
	s := &kubeSuite{
		opts:   opts,
		run:    runID,
		prefix: "ks-" + runID,
		host:   cfg.Host,
		rec:    &kubeRecorder{byCheck: map[string][]KubeHTTPExchange{}},
		logf:   opts.Logf,
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	s.ns = s.prefix
	s.norm = newKubeNormaliser(runID)

	s.cfg = rest.CopyConfig(cfg)
	s.cfg.QPS = -1 // no client-side rate limit, like Rancher
	if s.cfg.UserAgent == "" {
		s.cfg.UserAgent = kubeSuiteUserAgent
	}
	rec := s.rec
	s.cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &kubeRecordingTransport{next: rt, rec: rec, norm: s.norm}
	})
	var err error
	if s.http, err = rest.HTTPClientFor(s.cfg); err == nil {
		if s.cs, err = kubernetes.NewForConfigAndClient(s.cfg, s.http); err == nil {
			s.dyn, err = dynamic.NewForConfigAndClient(s.cfg, s.http)
		}
	}
	if err != nil {
		result.Checks = append(result.Checks, KubeCheckResult{Name: "setup", Level: kubeLevelRancher, Status: "fail", Detail: err.Error()})
		result.Failed = 1
		result.FailedByLevel[kubeLevelRancher] = 1
		return result
	}

	setupFailed := ""
	for _, def := range s.checks() {
		if setupFailed != "" {
			result.Checks = append(result.Checks, KubeCheckResult{Name: def.name, Level: def.level, Status: "skip", Detail: "setup failed: " + setupFailed})
			result.Skipped++
			continue
		}
		if !s.selected(def.name) || (s.opts.RancherOnly && def.level != kubeLevelRancher) {
			result.Checks = append(result.Checks, KubeCheckResult{Name: def.name, Level: def.level, Status: "skip"})
			result.Skipped++
			continue
		}
		if ctx.Err() != nil {
			result.Checks = append(result.Checks, KubeCheckResult{Name: def.name, Level: def.level, Status: "skip", Detail: "cancelled"})
			result.Skipped++
			continue
		}
		r, fatal := s.runCheck(ctx, def)
		switch r.Status {
		case "pass":
			result.Passed++
		case "fail":
			result.Failed++
			result.FailedByLevel[r.Level]++
		}
		s.logf("%-4s %-45s %5dms %s", r.Status, r.Name, r.DurationMS, kubeFirstLine(r.Detail))
		result.Checks = append(result.Checks, r)
		if def.name == "setup/namespace" && fatal {
			setupFailed = kubeFirstLine(r.Detail)
		}
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	s.cleanup(cctx)
	cancel()
	result.DurationMS = time.Since(started).Milliseconds()
	return result
}

func (s *kubeSuite) selected(name string) bool {
	for _, p := range s.opts.Skip {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	if len(s.opts.Only) == 0 {
		return true
	}
	for _, p := range s.opts.Only {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	// checks every other check depends on
	return name == "setup/namespace"
}

// runCheck runs one check; fatal reports that it stopped with an error (as
// opposed to recording failed expectations and completing).
func (s *kubeSuite) runCheck(ctx context.Context, def kubeCheckDef) (res KubeCheckResult, fatal bool) {
	res = KubeCheckResult{Name: def.name, Level: def.level}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, kubeCheckKey{}, def.name), 60*time.Second)
	defer cancel()
	c := &kubeCheck{s: s, ctx: cctx, res: &res}
	start := time.Now()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		err = def.run(c)
	}()
	res.DurationMS = time.Since(start).Milliseconds()
	res.HTTP = s.rec.take(def.name)
	for i := range res.HTTP {
		s.norm.exchange(&res.HTTP[i])
	}
	if strings.HasPrefix(def.name, "informers/") {
		// concurrent requests: order by what, not when
		sort.SliceStable(res.HTTP, func(i, j int) bool {
			a, b := res.HTTP[i], res.HTTP[j]
			return fmt.Sprint(a.Path, a.Method, a.Query, a.Status) < fmt.Sprint(b.Path, b.Method, b.Query, b.Status)
		})
	}
	res.HTTP = kubeCollapseRepeats(res.HTTP)
	c.mu.Lock()
	fails := append([]string(nil), c.failures...)
	c.mu.Unlock()
	if err != nil {
		fails = append(fails, err.Error())
	}
	if len(fails) > 0 {
		res.Status = "fail"
		res.Detail = strings.Join(fails, "; ")
	} else {
		res.Status = "pass"
	}
	return res, err != nil
}

// onCleanup registers fn to run when the suite ends (last registered, first
// run).
func (s *kubeSuite) onCleanup(fn func(ctx context.Context)) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, fn)
	s.mu.Unlock()
}

func (s *kubeSuite) cleanup(ctx context.Context) {
	ctx = context.WithValue(ctx, kubeCheckKey{}, "cleanup")
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i](ctx)
	}
	s.rec.take("cleanup")
}

// name returns a unique object name for this run.
func (s *kubeSuite) name(parts ...string) string {
	return strings.Join(append([]string{s.prefix}, parts...), "-")
}

// kubeRecorder collects the HTTP exchanges of each check.
type kubeRecorder struct {
	mu      sync.Mutex
	byCheck map[string][]KubeHTTPExchange
	closed  map[string]bool
}

func (r *kubeRecorder) add(check string, ex KubeHTTPExchange) {
	r.mu.Lock()
	if !r.closed[check] {
		r.byCheck[check] = append(r.byCheck[check], ex)
	}
	r.mu.Unlock()
}

// take returns a check's exchanges and stops recording for it (informers
// started by a check keep making requests after it ended).
func (r *kubeRecorder) take(check string) []KubeHTTPExchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.byCheck[check]
	delete(r.byCheck, check)
	if r.closed == nil {
		r.closed = map[string]bool{}
	}
	r.closed[check] = true
	return out
}

// snapshot returns the exchanges recorded so far for a check without
// removing them.
func (r *kubeRecorder) snapshot(check string) []KubeHTTPExchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]KubeHTTPExchange(nil), r.byCheck[check]...)
}

// kubeRecordingTransport records every request made under a check context.
type kubeRecordingTransport struct {
	next http.RoundTripper
	rec  *kubeRecorder
	norm *kubeNormaliser
}

func (t *kubeRecordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	check, _ := req.Context().Value(kubeCheckKey{}).(string)
	resp, err := t.next.RoundTrip(req)
	if check == "" {
		return resp, err
	}
	// paths, queries and errors are normalised when the check ends, once
	// every generated name is known
	ex := KubeHTTPExchange{
		Method:      req.Method,
		Path:        req.URL.Path,
		Query:       req.URL.RawQuery,
		RequestType: req.Header.Get("Content-Type"),
		Accept:      req.Header.Get("Accept"),
	}
	if err != nil {
		ex.Error = err.Error()
	} else {
		ex.Status = resp.StatusCode
		ex.ResponseType = resp.Header.Get("Content-Type")
	}
	t.rec.add(check, ex)
	return resp, err
}

// kubeRaw is a response read whole by kubeSuite.raw.
type kubeRaw struct {
	Status      int
	ContentType string
	Header      http.Header
	Body        []byte
}

// JSON decodes the body as JSON (nil when it is not JSON).
func (r kubeRaw) JSON() any {
	var v any
	if json.Unmarshal(r.Body, &v) != nil {
		return nil
	}
	return v
}

// summary is the normalised form recorded in transcripts.
func (r kubeRaw) summary() map[string]any {
	m := map[string]any{"status": r.Status, "contentType": r.ContentType}
	if v := r.JSON(); v != nil {
		m["body"] = v
	} else if len(r.Body) > 0 && len(r.Body) < 2048 && kubeIsText(r.Body) {
		m["body"] = string(r.Body)
	} else if len(r.Body) > 0 {
		m["bodyBytes"] = "<non-empty>"
	}
	return m
}

func kubeIsText(b []byte) bool {
	for _, c := range b {
		if c < 0x09 || (c > 0x0d && c < 0x20) || c == 0x7f {
			return false
		}
	}
	return true
}

// raw makes a request with exactly the given headers using the suite's
// transport (authentication, TLS, tunnel dial). path may carry a query.
func (s *kubeSuite) raw(ctx context.Context, method, path string, headers map[string]string, body []byte) (kubeRaw, error) {
	return kubeDoRaw(ctx, s.http, s.host, method, path, headers, body)
}

func kubeDoRaw(ctx context.Context, client *http.Client, host, method, path string, headers map[string]string, body []byte) (kubeRaw, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(host, "/")+path, rd)
	if err != nil {
		return kubeRaw{}, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return kubeRaw{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return kubeRaw{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Header: resp.Header, Body: b}, err
}

// kubeAcceptJSON is the Accept header of a plain JSON client.
var kubeAcceptJSON = map[string]string{"Accept": "application/json"}

func kubeFirstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// poll calls fn every interval until it returns true or an error, or the
// timeout passes.
func kubePoll(ctx context.Context, interval, timeout time.Duration, fn func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := fn()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// ---- CLI ------------------------------------------------------------------

func init() {
	register("kubesuite", kubeSuiteMain)
}

func kubeSuiteMain(args []string) error {
	fs := flag.NewFlagSet("kubesuite", flag.ContinueOnError)
	server := fs.String("server", "", "API server URL, https://host:port (required)")
	token := fs.String("token", "", "bearer token (required)")
	caFile := fs.String("ca-file", "", "PEM CA bundle to verify the server with")
	insecure := fs.Bool("insecure", false, "skip TLS verification (when no --ca-file)")
	serverName := fs.String("tls-server-name", "", "TLS server name to verify instead of the URL host")
	dialAddr := fs.String("dial", "", "connect to this host:port instead of the URL's (TLS still verified against --tls-server-name or the URL host)")
	rancherOnly := fs.Bool("rancher-only", false, "run only the checks Rancher depends on (level rancher)")
	jsonOut := fs.Bool("json", false, "print the full result as JSON on stdout")
	transcript := fs.String("transcript", "", "write the normalised transcript (reference format) to this file")
	runID := fs.String("run-id", "", "run id used in object names (random when empty)")
	only := fs.String("only", "", "comma-separated check name prefixes to run")
	skip := fs.String("skip", "", "comma-separated check name prefixes to skip")
	reference := fs.Bool("reference", false, "target is a real kube-apiserver: accept a service-account token filled after the create response")
	syncTimeout := fs.Duration("sync-timeout", 15*time.Second, "informer sync / event wait timeout")
	nsTimeout := fs.Duration("namespace-timeout", 30*time.Second, "wait for a deleted namespace to disappear")
	timeout := fs.Duration("timeout", 5*time.Minute, "overall timeout")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	klogOut := fs.Bool("klog", false, "let client-go log (reflector errors etc.) to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" || *token == "" {
		return errors.New("--server and --token are required")
	}
	if !*klogOut {
		kubeSilenceKlog()
	}
	cfg := &rest.Config{Host: *server, BearerToken: *token}
	cfg.TLSClientConfig.NextProtos = []string{"http/1.1"} // as Rancher's client
	if *dialAddr != "" {
		addr := *dialAddr
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	cfg.TLSClientConfig.ServerName = *serverName
	if *caFile != "" {
		cfg.TLSClientConfig.CAFile = *caFile
	} else {
		cfg.TLSClientConfig.Insecure = *insecure
	}
	opts := KubeSuiteOptions{
		RunID:                  *runID,
		Only:                   kubeSplitList(*only),
		Skip:                   kubeSplitList(*skip),
		ReferenceServer:        *reference,
		RancherOnly:            *rancherOnly,
		SyncTimeout:            *syncTimeout,
		NamespaceDeleteTimeout: *nsTimeout,
	}
	if !*quiet {
		opts.Logf = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res := runKubeSuite(ctx, cfg, opts)
	if *jsonOut {
		b, err := kubeMarshalStable(res)
		if err != nil {
			return err
		}
		if _, err := os.Stdout.Write(b); err != nil {
			return err
		}
	}
	if *transcript != "" {
		b, err := kubeMarshalStable(res.Transcript())
		if err != nil {
			return err
		}
		if err := os.WriteFile(*transcript, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "kubesuite %s: %d passed, %d failed (%v), %d skipped in %.1fs\n",
		res.RunID, res.Passed, res.Failed, res.FailedByLevel, res.Skipped, float64(res.DurationMS)/1000)
	if !res.Ok() {
		return fmt.Errorf("%d checks failed", res.Failed)
	}
	return nil
}

func kubeSplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// kubeMarshalStable renders v as indented JSON with sorted keys (maps are
// sorted by encoding/json; structs keep field order).
func kubeMarshalStable(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<rv>" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// kubeSortedKeys returns the keys of m in order.
func kubeSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// kubeSilenceKlog stops client-go's logging (reflector retries and the
// like) from interleaving with the suite's own output. CLI only: the
// library entry point leaves the process's logging alone.
func kubeSilenceKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}

// kubeSanitiseRunID keeps lower-case letters and digits, at most 8; an id
// shorter than 4 is refused (""), as replacing it in transcripts would
// mangle unrelated text.
func kubeSanitiseRunID(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 8 {
		out = out[:8]
	}
	if len(out) < 4 {
		return ""
	}
	return out
}
