package main

// The per-cluster ("user") controllers Rancher runs for a provisioned
// cluster (rancher-server-side §2 step 6, §8.1): the clustermanager start
// (GET kube-system until it answers, 3 failures mark the cluster
// unavailable), the informers (which must sync within the start deadline),
// the health syncer, and the RBAC/namespace writes. They keep running
// across tunnel reconnects (the informers re-list or re-watch from their
// last resourceVersion), and are restarted when the tunnel params change.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

type rancherUserControllers struct {
	rc     *rancherCluster
	params TunnelParams
	ctx    context.Context
	cancel context.CancelFunc

	// typed is Rancher's K8sClient (protobuf bodies, 45 s timeout);
	// ctrl its controller clients (JSON bodies); unversioned the client of
	// /readyz.
	typed       kubernetes.Interface
	ctrl        kubernetes.Interface
	unversioned rest.Interface
	informers   *rancherInformers
	rbac        *rancherRBAC

	mu        sync.Mutex
	phase     string // starting, syncing, running, stopped
	startedAt time.Time
	syncedAt  time.Time
	stoppedAt time.Time
	stopWhy   string
	startTry  int
	lastErr   string
	probe     probeStats
}

// probeStats is what the health syncer saw.
type probeStats struct {
	Path        string    `json:"path"`
	Checks      int       `json:"checks"`
	Requests    int       `json:"requests"`
	OK          int       `json:"ok"`
	Failed      int       `json:"failed"`
	Skipped     int       `json:"skipped"`
	LastAt      time.Time `json:"lastAt,omitzero"`
	LastOKAt    time.Time `json:"lastOkAt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	LastSkipped string    `json:"lastSkipped,omitempty"`
	LastMillis  int64     `json:"lastMs"`
}

func (rc *rancherCluster) userControllers() *rancherUserControllers {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.user
}

// userControllersSync is Rancher's usercontrollers handler: start the
// per-cluster controllers of a provisioned cluster.
func (rc *rancherCluster) userControllersSync() {
	if !rc.downstream() {
		return
	}
	conds := rc.conditions()
	p := rc.params()
	if !conds.isTrue(condProvisioned) || !conds.isTrue(condServiceAccountSecretsMigrated) || p == nil {
		return
	}
	rc.mu.Lock()
	if rc.user != nil {
		rc.mu.Unlock()
		return
	}
	uc, err := newUserControllers(rc, *p)
	if err != nil {
		rc.mu.Unlock()
		slog.Warn("rancher: cannot build the cluster's clients", "cluster", rc.id, "error", err)
		return
	}
	rc.user, rc.lastUser = uc, uc
	rc.mu.Unlock()
	go uc.run()
}

// stopUserControllers stops the per-cluster controllers; they start again
// on the next cluster change or peer sync.
func (rc *rancherCluster) stopUserControllers(why string) {
	rc.mu.Lock()
	uc := rc.user
	rc.user = nil
	rc.mu.Unlock()
	if uc != nil {
		uc.stopWith(why)
		rc.kickMgmt()
	}
}

func newUserControllers(rc *rancherCluster, p TunnelParams) (*rancherUserControllers, error) {
	cfg, err := rancherRESTConfig(rc.id, p, rc.clusterDialer(true))
	if err != nil {
		return nil, err
	}
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctrl, err := kubernetes.NewForConfig(controllerConfig(cfg))
	if err != nil {
		return nil, err
	}
	ucfg := rest.CopyConfig(cfg)
	ucfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	unversioned, err := rest.UnversionedRESTClientFor(ucfg)
	if err != nil {
		return nil, err
	}
	informers, err := newRancherInformers(rc, controllerConfig(cfg))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(rc.ctx)
	uc := &rancherUserControllers{
		rc: rc, params: p, ctx: ctx, cancel: cancel,
		typed: typed, ctrl: ctrl, unversioned: unversioned,
		informers: informers, phase: "starting", startedAt: time.Now().UTC(),
	}
	uc.rbac = newRancherRBAC(uc)
	uc.probe.Path = "/api/v1/namespaces/kube-system"
	if rc.opts().version.readyzProbe() {
		uc.probe.Path = "/readyz"
	}
	return uc, nil
}

func (uc *rancherUserControllers) sameParams(p *TunnelParams) bool {
	return p != nil && *p == uc.params
}

func (uc *rancherUserControllers) stop() { uc.stopWith("stopped") }

func (uc *rancherUserControllers) stopWith(why string) {
	uc.mu.Lock()
	if uc.phase != "stopped" {
		uc.phase = "stopped"
		uc.stoppedAt = time.Now().UTC()
		uc.stopWhy = why
	}
	uc.mu.Unlock()
	uc.cancel()
}

func (uc *rancherUserControllers) setPhase(phase, lastErr string) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	if uc.phase == "stopped" {
		return
	}
	uc.phase = phase
	if lastErr != "" {
		uc.lastErr = lastErr
	}
	if phase == "running" {
		uc.syncedAt = time.Now().UTC()
	}
}

// synced reports whether every informer synced (the controllers run).
func (uc *rancherUserControllers) synced() bool {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	return uc.phase == "running"
}

// run is clustermanager.doStart.
func (uc *rancherUserControllers) run() {
	rc := uc.rc
	opts := rc.opts()
	for i := 0; ; i++ {
		uc.mu.Lock()
		uc.startTry = i + 1
		uc.mu.Unlock()
		ctx, cancel := context.WithTimeout(uc.ctx, 45*time.Second)
		_, err := uc.typed.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		cancel()
		if err == nil || apierrors.IsNotFound(err) {
			break
		}
		uc.setPhase("starting", err.Error())
		if i == 2 {
			uc.markUnavailable(fmt.Sprintf("controller start: GET kube-system failed 3 times: %v", err))
		}
		select {
		case <-uc.ctx.Done():
			return
		case <-time.After(opts.probeRetryDelay):
		}
	}
	go uc.healthLoop()
	// lasso's health check before it starts the caches
	ctx, cancel := context.WithTimeout(uc.ctx, 15*time.Second)
	_ = uc.ctrl.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error()
	cancel()
	uc.setPhase("syncing", "")
	uc.informers.start(uc.ctx)
	syncCtx, cancel := context.WithTimeout(uc.ctx, opts.syncTimeout)
	ok := uc.informers.waitForSync(syncCtx)
	cancel()
	if uc.ctx.Err() != nil {
		return
	}
	if !ok {
		uc.markUnavailable("timeout syncing controllers")
		return
	}
	slog.Info("rancher: Starting cluster agent", "cluster", rc.id)
	uc.setPhase("running", "")
	uc.rbac.start(uc.ctx)
	go uc.countPods()
	rc.kickDeploy()
}

// countPods lists the pods once, for the control API (Rancher itself
// never lists pods of an imported cluster).
func (uc *rancherUserControllers) countPods() {
	ctx, cancel := context.WithTimeout(uc.ctx, 45*time.Second)
	defer cancel()
	list, err := uc.ctrl.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	uc.rc.mu.Lock()
	uc.rc.podCount = len(list.Items)
	uc.rc.mu.Unlock()
}

// markUnavailable is clustermanager.markUnavailable: Ready False (status
// only) and the controllers stop.
func (uc *rancherUserControllers) markUnavailable(why string) {
	rc := uc.rc
	slog.Warn("rancher: marking cluster unavailable", "cluster", rc.id, "why", why)
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if rec.Conditions.isFalse(condReady) {
			return false
		}
		return rec.Conditions.setStatus(now, condReady, statusFalse)
	})
	rc.mu.Lock()
	if rc.user == uc {
		rc.user = nil
	}
	rc.mu.Unlock()
	uc.stopWith(why)
	rc.kickMgmt()
}

// healthLoop is the health syncer: every probe interval, unless the
// cluster is not provisioned or not connected, check the API up to three
// times and set Ready (and Waiting) from the outcome.
func (uc *rancherUserControllers) healthLoop() {
	rc := uc.rc
	t := time.NewTicker(rc.opts().probeInterval)
	defer t.Stop()
	for {
		select {
		case <-uc.ctx.Done():
			return
		case <-t.C:
		}
		uc.healthCheck()
	}
}

func (uc *rancherUserControllers) healthCheck() {
	rc := uc.rc
	conds := rc.conditions()
	skip := ""
	switch {
	case !conds.isTrue(condProvisioned):
		skip = "cluster not provisioned"
	case conds.isFalse(condConnected):
		skip = "cluster agent not connected (Connected=False)"
	}
	if skip != "" {
		uc.mu.Lock()
		uc.probe.Skipped++
		uc.probe.LastSkipped = skip
		uc.mu.Unlock()
		return
	}
	var err error
	start := time.Now()
	for i := 0; ; i++ {
		err = uc.probeOnce()
		if err == nil || i > 1 {
			break
		}
		select {
		case <-uc.ctx.Done():
			return
		case <-time.After(rc.opts().probeRetryDelay):
		}
	}
	uc.mu.Lock()
	p := &uc.probe
	p.Checks++
	p.LastAt = time.Now().UTC()
	p.LastMillis = time.Since(start).Milliseconds()
	if err == nil {
		p.OK++
		p.LastOKAt = p.LastAt
		p.LastError = ""
	} else {
		p.Failed++
		p.LastError = err.Error()
	}
	uc.mu.Unlock()
	if uc.ctx.Err() != nil {
		return
	}
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		conds := &rec.Conditions
		// The update is based on the cluster as it was when the check
		// started; one that went disconnected meanwhile makes it conflict.
		if conds.isFalse(condConnected) {
			return false
		}
		if err != nil {
			return conds.set(now, condReady, statusFalse, reasonError,
				prefixHealthCheck+prefixHealthNamespace+err.Error())
		}
		changed := conds.set(now, condReady, statusTrue, "", "")
		w := conds.find(condWaiting)
		reason := ""
		if w != nil {
			reason = w.Reason
		}
		return conds.set(now, condWaiting, statusTrue, reason, "") || changed
	})
}

// probeOnce is one API health check: GET /readyz (2.14) or the kube-system
// namespace within 5 s, 404 counting as up (2.11).
func (uc *rancherUserControllers) probeOnce() error {
	uc.mu.Lock()
	uc.probe.Requests++
	uc.mu.Unlock()
	if uc.rc.opts().version.readyzProbe() {
		_, err := uc.unversioned.Get().AbsPath("/readyz").DoRaw(uc.ctx)
		return err
	}
	ctx, cancel := context.WithTimeout(uc.ctx, 5*time.Second)
	defer cancel()
	_, err := uc.typed.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// view is the control API's picture of the controllers.
func (uc *rancherUserControllers) view() map[string]any {
	uc.mu.Lock()
	v := map[string]any{
		"phase":     uc.phase,
		"startedAt": uc.startedAt,
		"syncedAt":  nullTime(uc.syncedAt),
		"stoppedAt": nullTime(uc.stoppedAt),
		"stopWhy":   uc.stopWhy,
		"startTry":  uc.startTry,
		"lastError": uc.lastErr,
	}
	probe := uc.probe
	uc.mu.Unlock()
	v["probe"] = probe
	v["informers"] = uc.informers.view()
	v["rbac"] = uc.rbac.view()
	return v
}
