package main

// Latency of a simulated cluster's API as Rancher's clients see it, for
// `python -m bench latency`: requests dialled through the cluster's main
// tunnel with Rancher's REST config (TLS verified against the announced CA,
// the announced bearer token, ALPN http/1.1) and the controller clients'
// Accept header (protobuf, then JSON), timed from the call until the
// answer is decoded.
//
//	POST /standin/clusters/{id}/bench/latency   benchLatencyRequest -> benchLatencyResult
//	POST /standin/bench/burst                   benchBurstRequest -> benchBurstResult
//
// Read operations (benchReads) are timed one after the other, on a
// kept-alive connection (as Rancher's clients reuse theirs; one untimed
// request first opens it) or, with "cold", on a new tunnel stream and TLS
// handshake each. "write-watch" opens a watch on ConfigMaps of one
// namespace (label-selected to this run) and then creates ConfigMaps one by
// one: "create" is the create request, "write-to-watch" the time from the
// start of the create until the watch delivered its ADDED event, and
// "delete" the clean-up. A burst runs read operations on many clusters at
// once, each cluster with a fresh client (new streams and handshakes, as
// after a tunnel reconnect or a Rancher restart).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// benchRead is one timed GET.
type benchRead struct {
	path   string
	rbac   bool
	newObj func() runtime.Object // nil: raw body (/readyz)
}

var benchReads = map[string]benchRead{
	"readyz":          {path: "/readyz"},
	"get-kube-system": {path: "/api/v1/namespaces/kube-system", newObj: func() runtime.Object { return &corev1.Namespace{} }},
	"list-nodes":      {path: "/api/v1/nodes", newObj: func() runtime.Object { return &corev1.NodeList{} }},
	"list-pods":       {path: "/api/v1/pods", newObj: func() runtime.Object { return &corev1.PodList{} }},
	"list-namespaces": {path: "/api/v1/namespaces", newObj: func() runtime.Object { return &corev1.NamespaceList{} }},
	"list-clusterroles": {path: "/apis/rbac.authorization.k8s.io/v1/clusterroles", rbac: true,
		newObj: func() runtime.Object { return &rbacv1.ClusterRoleList{} }},
}

var benchDefaultOps = []string{"readyz", "get-kube-system", "list-nodes", "list-pods", "list-clusterroles", "write-watch"}

// benchOpResult is what one operation measured.
type benchOpResult struct {
	SamplesMs []float64 `json:"samplesMs"`
	Errors    int       `json:"errors"`
	LastError string    `json:"lastError,omitempty"`
	// Bytes and Items describe the last answer.
	Bytes int `json:"bytes"`
	Items int `json:"items"`
	// PhasesMs splits each successful request (net/http's client trace):
	// "dial" (the tunnel stream, new connections only), "tls" (handshake,
	// new connections only), "wait" (request written until the first byte
	// of the answer) and "read" (the rest of the body and its decoding).
	PhasesMs map[string][]float64 `json:"phasesMs,omitempty"`
}

// benchTrace stamps the phases of one request.
type benchTrace struct {
	mu                                         sync.Mutex
	start, tlsStart, tlsDone, wrote, firstByte time.Time
}

func (t *benchTrace) context(ctx context.Context) context.Context {
	now := func(p *time.Time) func() {
		return func() { t.mu.Lock(); *p = time.Now(); t.mu.Unlock() }
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		TLSHandshakeStart:    now(&t.tlsStart),
		TLSHandshakeDone:     func(tls.ConnectionState, error) { now(&t.tlsDone)() },
		WroteRequest:         func(httptrace.WroteRequestInfo) { now(&t.wrote)() },
		GotFirstResponseByte: now(&t.firstByte),
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchTimeout is a request's timeoutSeconds, or fallback when it gives none.
func benchTimeout(seconds float64, fallback time.Duration) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds * float64(time.Second))
	}
	return fallback
}

// addPhases records the phases of a traced request that ended at end.
func (o *benchOpResult) addPhases(t *benchTrace, end time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.wrote.IsZero() || t.firstByte.IsZero() {
		return
	}
	if o.PhasesMs == nil {
		o.PhasesMs = map[string][]float64{}
	}
	if !t.tlsStart.IsZero() && !t.tlsDone.IsZero() {
		o.PhasesMs["dial"] = append(o.PhasesMs["dial"], ms(t.tlsStart.Sub(t.start)))
		o.PhasesMs["tls"] = append(o.PhasesMs["tls"], ms(t.tlsDone.Sub(t.tlsStart)))
	}
	o.PhasesMs["wait"] = append(o.PhasesMs["wait"], ms(t.firstByte.Sub(t.wrote)))
	o.PhasesMs["read"] = append(o.PhasesMs["read"], ms(end.Sub(t.firstByte)))
}

func (o *benchOpResult) add(d time.Duration, err error) {
	if err != nil {
		o.Errors++
		o.LastError = err.Error()
		return
	}
	o.SamplesMs = append(o.SamplesMs, ms(d))
}

type benchLatencyRequest struct {
	Iterations     int      `json:"iterations"`
	Ops            []string `json:"ops"`
	Cold           bool     `json:"cold"`
	Accept         string   `json:"accept"` // "protobuf" (default) or "json"
	Namespace      string   `json:"namespace"`
	PauseMs        int      `json:"pauseMs"`
	TimeoutSeconds float64  `json:"timeoutSeconds"`
}

// benchClient is a clientset with its own HTTP transport.
type benchClient struct {
	cs   kubernetes.Interface
	http *http.Client
}

func (c *benchClient) closeIdle() { utilnet.CloseIdleConnectionsFor(c.http.Transport) }

// benchClientFor builds a client of a cluster with Rancher's controller
// config and a transport of its own (nothing shared with Rancher's
// emulated controllers). Its dials fail at once without a main tunnel.
func (rc *rancherCluster) benchClientFor(accept string) (*benchClient, error) {
	cfg, err := rc.restConfig(false)
	if err != nil {
		return nil, err
	}
	c := controllerConfig(cfg)
	switch accept {
	case "", "protobuf":
	case "json":
		c.AcceptContentTypes = "application/json"
	default:
		return nil, badRequestError{fmt.Errorf("accept must be protobuf or json, not %q", accept)}
	}
	hc, err := rest.HTTPClientFor(c)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfigAndClient(c, hc)
	if err != nil {
		return nil, err
	}
	return &benchClient{cs: cs, http: hc}, nil
}

// read runs one read operation; it returns the body size and item count.
func (c *benchClient) read(ctx context.Context, op benchRead) (int, int, error) {
	var client rest.Interface = c.cs.CoreV1().RESTClient()
	if op.rbac {
		client = c.cs.RbacV1().RESTClient()
	}
	if op.newObj == nil {
		raw, err := c.cs.Discovery().RESTClient().Get().AbsPath(op.path).DoRaw(ctx)
		return len(raw), 0, err
	}
	res := client.Get().AbsPath(op.path).Do(ctx)
	raw, err := res.Raw()
	if err != nil {
		return len(raw), 0, err
	}
	obj := op.newObj()
	if err := res.Into(obj); err != nil {
		return len(raw), 0, err
	}
	items := 1
	if meta.IsListType(obj) {
		items = meta.LenList(obj)
	}
	return len(raw), items, nil
}

func (r *rancherServer) handleBenchLatency(w http.ResponseWriter, req *http.Request) {
	var body benchLatencyRequest
	if err := readBody(req, &body); err != nil {
		writeControlError(w, err)
		return
	}
	rc := r.cluster(req.PathValue("id"))
	if rc == nil {
		writeControlError(w, errUnknownCluster)
		return
	}
	if body.Iterations <= 0 {
		body.Iterations = 50
	}
	if len(body.Ops) == 0 {
		body.Ops = benchDefaultOps
	}
	if body.Namespace == "" {
		body.Namespace = "default"
	}
	timeout := benchTimeout(body.TimeoutSeconds, 10*time.Second)
	for _, name := range body.Ops {
		if _, ok := benchReads[name]; !ok && name != "write-watch" {
			writeControlError(w, badRequestError{fmt.Errorf("unknown op %q", name)})
			return
		}
	}
	client, err := rc.benchClientFor(body.Accept)
	if err != nil {
		writeControlError(w, err)
		return
	}
	defer client.closeIdle()
	pause := time.Duration(body.PauseMs) * time.Millisecond
	started := time.Now()
	results := map[string]*benchOpResult{}
	first := map[string]float64{}
	for _, name := range body.Ops {
		if name == "write-watch" {
			for k, v := range benchWriteWatch(req.Context(), client, body.Namespace, body.Iterations, pause, timeout) {
				results[k] = v
			}
			continue
		}
		op := benchReads[name]
		res := &benchOpResult{}
		if !body.Cold {
			// This request pays for the tunnel stream and the handshake;
			// kept apart, the samples are those of a connection in use.
			ctx, cancel := context.WithTimeout(req.Context(), timeout)
			t0 := time.Now()
			_, _, err := client.read(ctx, op)
			cancel()
			if err == nil {
				first[name] = ms(time.Since(t0))
			}
		}
		for i := 0; i < body.Iterations; i++ {
			if req.Context().Err() != nil {
				break
			}
			ctx, cancel := context.WithTimeout(req.Context(), timeout)
			trace := &benchTrace{}
			ctx = trace.context(ctx)
			t0 := time.Now()
			trace.start = t0
			n, items, err := client.read(ctx, op)
			end := time.Now()
			d := end.Sub(t0)
			cancel()
			res.add(d, err)
			if err == nil {
				res.Bytes, res.Items = n, items
				res.addPhases(trace, end)
			}
			if body.Cold {
				client.closeIdle()
			}
			if pause > 0 {
				time.Sleep(pause)
			}
		}
		results[name] = res
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"cluster":    rc.id,
		"iterations": body.Iterations,
		"cold":       body.Cold,
		"accept":     map[bool]string{true: "application/json", false: acceptControllers}[body.Accept == "json"],
		"ops":        results,
		"firstMs":    first,
		"durationMs": time.Since(started).Milliseconds(),
	})
}

// benchWriteWatch creates n ConfigMaps one by one under a watch and times
// the create, the delivery of its ADDED event and the clean-up.
func benchWriteWatch(parent context.Context, client *benchClient, ns string, n int, pause, timeout time.Duration) map[string]*benchOpResult {
	create, delivered, del := &benchOpResult{}, &benchOpResult{}, &benchOpResult{}
	out := map[string]*benchOpResult{"create": create, "write-to-watch": delivered, "delete": del}
	run := randomString(8)
	label := "scaleagent-bench"
	cms := client.cs.CoreV1().ConfigMaps(ns)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	wi, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: label + "=" + run, AllowWatchBookmarks: true})
	if err != nil {
		delivered.add(0, fmt.Errorf("opening the watch: %w", err))
		return out
	}
	defer wi.Stop()

	// Events are stamped by a reader of their own: the ADDED event can
	// arrive before Create returns, and its time must not wait for that.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	notify := make(chan struct{}, 1)
	watchEnded := make(chan struct{})
	go func() {
		defer close(watchEnded)
		for ev := range wi.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			m, err := meta.Accessor(ev.Object)
			if err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			arrived[m.GetName()] = now
			mu.Unlock()
			select {
			case notify <- struct{}{}:
			default:
			}
		}
	}()

	var names []string
	for i := 0; i < n && parent.Err() == nil; i++ {
		name := fmt.Sprintf("bench-%s-%d", run, i)
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{label: run}},
			Data:       map[string]string{"iteration": fmt.Sprint(i)},
		}
		cctx, ccancel := context.WithTimeout(parent, timeout)
		t0 := time.Now()
		_, err := cms.Create(cctx, cm, metav1.CreateOptions{})
		create.add(time.Since(t0), err)
		ccancel()
		if err != nil {
			continue
		}
		names = append(names, name)
		deadline := time.NewTimer(timeout)
		var got time.Time
	wait:
		for {
			mu.Lock()
			at, ok := arrived[name]
			mu.Unlock()
			if ok {
				got = at
				break
			}
			select {
			case <-notify:
			case <-watchEnded:
				break wait
			case <-deadline.C:
				break wait
			}
		}
		deadline.Stop()
		switch {
		case !got.IsZero():
			delivered.add(got.Sub(t0), nil)
		default:
			select {
			case <-watchEnded:
				delivered.add(0, errors.New("the watch ended"))
			default:
				delivered.add(0, fmt.Errorf("no ADDED event within %s", timeout))
			}
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	for _, name := range names {
		dctx, dcancel := context.WithTimeout(parent, timeout)
		t0 := time.Now()
		err := cms.Delete(dctx, name, metav1.DeleteOptions{})
		del.add(time.Since(t0), err)
		dcancel()
	}
	return out
}

type benchBurstRequest struct {
	Ops            []string `json:"ops"`
	Clusters       []string `json:"clusters"`
	Concurrency    int      `json:"concurrency"`
	Rounds         int      `json:"rounds"`
	Accept         string   `json:"accept"`
	TimeoutSeconds float64  `json:"timeoutSeconds"`
}

// handleBenchBurst runs read operations on many clusters at once: every
// cluster (by default those whose controllers run) gets a fresh client,
// and `rounds` times each op; `concurrency` requests are in flight.
func (r *rancherServer) handleBenchBurst(w http.ResponseWriter, req *http.Request) {
	var body benchBurstRequest
	if err := readBody(req, &body); err != nil {
		writeControlError(w, err)
		return
	}
	if len(body.Ops) == 0 {
		body.Ops = []string{"list-nodes"}
	}
	for _, name := range body.Ops {
		if _, ok := benchReads[name]; !ok {
			writeControlError(w, badRequestError{fmt.Errorf("unknown read op %q", name)})
			return
		}
	}
	if body.Concurrency <= 0 {
		body.Concurrency = 32
	}
	if body.Rounds <= 0 {
		body.Rounds = 1
	}
	timeout := benchTimeout(body.TimeoutSeconds, 60*time.Second)
	var targets []*rancherCluster
	if len(body.Clusters) > 0 {
		var err error
		if targets, err = r.lookupAll(body.Clusters); err != nil {
			writeControlError(w, err)
			return
		}
	} else {
		r.clusters.Range(func(_, v any) bool {
			rc := v.(*rancherCluster)
			if uc := rc.userControllers(); uc != nil && uc.synced() {
				targets = append(targets, rc)
			}
			return true
		})
	}
	type job struct {
		rc *rancherCluster
		op string
	}
	jobs := make(chan job)
	// One client per cluster, built by the first job that needs it. The map
	// is complete before the workers start, so they only read it, and a
	// slow build (restConfig, transport) holds up only that cluster's jobs.
	type lazyClient struct {
		once sync.Once
		c    *benchClient
		err  error
	}
	clients := make(map[*rancherCluster]*lazyClient, len(targets))
	for _, rc := range targets {
		clients[rc] = &lazyClient{}
	}
	clientFor := func(rc *rancherCluster) (*benchClient, error) {
		lc := clients[rc]
		lc.once.Do(func() { lc.c, lc.err = rc.benchClientFor(body.Accept) })
		return lc.c, lc.err
	}
	var mu sync.Mutex
	results := map[string]*benchOpResult{}
	for _, name := range body.Ops {
		results[name] = &benchOpResult{}
	}
	var wg sync.WaitGroup
	started := time.Now()
	for i := 0; i < body.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				c, err := clientFor(j.rc)
				var d time.Duration
				var n, items int
				if err == nil {
					ctx, cancel := context.WithTimeout(req.Context(), timeout)
					t0 := time.Now()
					n, items, err = c.read(ctx, benchReads[j.op])
					d = time.Since(t0)
					cancel()
				}
				mu.Lock()
				res := results[j.op]
				res.add(d, err)
				if err == nil {
					res.Bytes, res.Items = n, items
				}
				mu.Unlock()
			}
		}()
	}
	for round := 0; round < body.Rounds; round++ {
		for _, rc := range targets {
			for _, op := range body.Ops {
				jobs <- job{rc: rc, op: op}
			}
		}
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(started)
	for _, lc := range clients {
		if lc.c != nil {
			lc.c.closeIdle()
		}
	}
	total := 0
	for _, res := range results {
		total += len(res.SamplesMs) + res.Errors
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"clusters":    len(targets),
		"requests":    total,
		"concurrency": body.Concurrency,
		"rounds":      body.Rounds,
		"wallMs":      wall.Milliseconds(),
		"perSecond":   float64(total) / wall.Seconds(),
		"ops":         results,
	})
}
