package main

// One emulated management cluster: its record, the goroutines that play
// Rancher's management controllers for it, and what they observed.

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// maxTimeline is how many state transitions a cluster remembers.
const maxTimeline = 50

// rancherTransition is one change of the displayed state.
type rancherTransition struct {
	At      time.Time `json:"at"`
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
}

type rancherCluster struct {
	srv    *rancherServer
	id     string
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	rec mgmtRecord
	// mgmtReady is set once the management-only controllers ran.
	mgmtReady bool
	mainLive  int
	steveLive int
	// params are the tunnel params the current controllers were built
	// from (Rancher's apiEndpoint, caCert and token secret).
	user *rancherUserControllers
	// lastUser is the latest controllers, kept for the view after a stop.
	lastUser  *rancherUserControllers
	podCount  int
	lastState string
	timeline  []rancherTransition
	stats     rancherStats
	deploy    deployStatus
	// imageCached is clusterdeploy's in-memory cache of the downstream
	// agent image (valid when imageCacheOK).
	imageCached  string
	imageCacheOK bool
	// direct is the client without dial retries, built for directParams.
	direct       kubernetes.Interface
	directParams TunnelParams

	kick       chan struct{}
	deployKick chan struct{}
	persistMu  sync.Mutex
	stopOnce   sync.Once
	done       chan struct{}
}

// rancherStats is what the stats aggregator and the tunnel authoriser saw.
type rancherStats struct {
	mainConnects   int
	versionChecks  int
	versionErrors  int
	versionChanges int
	lastVersionErr string
	versionAt      time.Time
}

func newRancherCluster(srv *rancherServer, id string, rec mgmtRecord) *rancherCluster {
	ctx, cancel := context.WithCancel(srv.context())
	rc := &rancherCluster{
		srv:        srv,
		id:         id,
		ctx:        ctx,
		cancel:     cancel,
		rec:        rec,
		kick:       make(chan struct{}, 1),
		deployKick: make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	rc.mgmtReady = len(rec.Conditions) > 0
	rc.lastState = rc.summaryLocked(time.Now()).State
	return rc
}

func (rc *rancherCluster) opts() rancherOptions { return rc.srv.opts }

// downstream reports whether Rancher's requests to the downstream are
// emulated for this cluster: clusters made through the control API get
// none unless --downstream-control-clusters.
func (rc *rancherCluster) downstream() bool {
	o := rc.opts()
	if !o.downstream || benchHeld(rc.id) {
		return false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.rec.API != "standin" || o.downstreamAll
}

// run starts the management controllers of the cluster.
func (rc *rancherCluster) run() {
	go rc.mgmtLoop()
	go rc.deployLoop()
}

func (rc *rancherCluster) stop() {
	rc.stopOnce.Do(func() {
		rc.cancel()
		rc.mu.Lock()
		u := rc.user
		rc.user = nil
		rc.mu.Unlock()
		if u != nil {
			u.stop()
		}
	})
}

// kickMgmt tells the management controllers the cluster changed.
func (rc *rancherCluster) kickMgmt() {
	select {
	case rc.kick <- struct{}{}:
	default:
	}
}

func (rc *rancherCluster) kickDeploy() {
	select {
	case rc.deployKick <- struct{}{}:
	default:
	}
}

// mgmtVisibleAt is when the management cluster exists: a v1 cluster's is
// created by the provisioning controller a moment after the v1 object.
func (rc *rancherCluster) mgmtVisibleAt() time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.mgmtVisibleAtLocked()
}

func (rc *rancherCluster) mgmtVisibleAtLocked() time.Time {
	if rc.rec.API == "v1" {
		return rc.rec.Created.Add(rc.opts().controllerDelay)
	}
	return rc.rec.Created
}

// mgmtLoop plays the controllers that react to cluster changes:
// management-only ones, the provisioner and the usercontrollers that start
// the per-cluster (downstream) controllers.
func (rc *rancherCluster) mgmtLoop() {
	defer close(rc.done)
	if !rc.sleepUntil(rc.mgmtVisibleAt().Add(rc.opts().controllerDelay)) {
		return
	}
	rc.initMgmtConditions()
	peer := time.NewTicker(rc.opts().peerSync)
	defer peer.Stop()
	rc.kickMgmt()
	for {
		select {
		case <-rc.ctx.Done():
			return
		case <-rc.kick:
			rc.provisionerSync()
			rc.userControllersSync()
			rc.kickDeploy()
		case <-peer.C:
			// the usercontrollers peer sync only (re)starts controllers
			rc.userControllersSync()
		}
	}
}

// sleepUntil waits for t; false when the cluster went away.
func (rc *rancherCluster) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return rc.ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-rc.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// initMgmtConditions is what the management-only controllers set for a new
// cluster (project/namespace setup, the provisioner's create, the stats
// aggregator and the secret migrator), in the order Rancher appends them.
func (rc *rancherCluster) initMgmtConditions() {
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		rc.mgmtReady = true
		changed := false
		for _, typ := range []string{condBackingNamespaceCreated, condDefaultProjectCreated, condSystemProjectCreated, condInitialRolesPopulated, condCreatorMadeOwner} {
			if rec.Conditions.find(typ) == nil {
				changed = rec.Conditions.set(now, typ, statusTrue, "", "") || changed
			}
		}
		changed = rc.provisionerCreateConditions(rec, now) || changed
		migrated := []string{condNoDiskPressure, condNoMemoryPressure, condServiceAccountSecretsMigrated}
		if rc.opts().version == rancher211 {
			// 2.11's secret migrator also reports the older migrations.
			migrated = []string{condNoDiskPressure, condNoMemoryPressure, "SecretsMigrated", condServiceAccountSecretsMigrated, "RKESecretsMigrated", "ACISecretsMigrated"}
		}
		for _, typ := range migrated {
			if rec.Conditions.find(typ) == nil {
				changed = rec.Conditions.set(now, typ, statusTrue, "", "") || changed
			}
		}
		return changed
	})
}

// update changes the record under the lock; when fn reports a change, the
// record is saved and the controllers are told.
func (rc *rancherCluster) update(fn func(rec *mgmtRecord, now time.Time) bool) bool {
	rc.mu.Lock()
	now := time.Now()
	changed := fn(&rc.rec, now)
	if changed {
		rc.noteStateLocked(now)
	}
	rc.mu.Unlock()
	if changed {
		rc.persist()
		rc.kickMgmt()
	}
	return changed
}

// noteStateLocked records a change of the displayed state.
func (rc *rancherCluster) noteStateLocked(now time.Time) {
	sum := rc.summaryLocked(now)
	if sum.State == rc.lastState {
		return
	}
	slog.Info("rancher: cluster state", "cluster", rc.id, "from", rc.lastState, "to", sum.State, "message", sum.message())
	rc.lastState = sum.State
	rc.timeline = append(rc.timeline, rancherTransition{At: now.UTC(), State: sum.State, Message: sum.message()})
	if len(rc.timeline) > maxTimeline {
		rc.timeline = rc.timeline[len(rc.timeline)-maxTimeline:]
	}
}

func (rc *rancherCluster) summaryLocked(now time.Time) mgmtSummary {
	return summarizeCluster(rc.rec.Conditions, rc.mgmtVisibleAtLocked(), false, now)
}

// persist saves the record into the stand-in's state.
func (rc *rancherCluster) persist() {
	rc.persistMu.Lock()
	defer rc.persistMu.Unlock()
	rc.mu.Lock()
	raw, err := json.Marshal(&rc.rec)
	rc.mu.Unlock()
	if err != nil {
		panic(err)
	}
	_ = rc.srv.s.WithCluster(rc.id, func(c *Cluster) error {
		if c.Ext == nil {
			c.Ext = map[string]json.RawMessage{}
		}
		c.Ext[rancherExtName] = raw
		return nil
	})
}

// snapshot returns a copy of the record.
func (rc *rancherCluster) snapshot() mgmtRecord {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.copyRecLocked()
}

func (rc *rancherCluster) copyRecLocked() mgmtRecord {
	raw, err := json.Marshal(&rc.rec)
	if err != nil {
		panic(err)
	}
	var out mgmtRecord
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	return out
}

func (rc *rancherCluster) conditions() mgmtConditions {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append(mgmtConditions(nil), rc.rec.Conditions...)
}

// onTunnelEvent is the tunnel authoriser's effect on the cluster: the
// first accepted main tunnel makes the driver "imported" and stores the
// API endpoint and CA (the params); a change of them restarts the
// per-cluster controllers (clustermanager.changed()).
func (rc *rancherCluster) onTunnelEvent(ev TunnelEvent) {
	rc.mu.Lock()
	if ev.Tunnel == TunnelMain {
		rc.mainLive = ev.Live
	} else {
		rc.steveLive = ev.Live
	}
	rc.mu.Unlock()
	if ev.Tunnel != TunnelMain || !ev.Connected {
		return
	}
	rc.mu.Lock()
	rc.stats.mainConnects++
	rc.mu.Unlock()
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if rec.Driver == "" {
			rec.Driver = "imported"
			return true
		}
		return false
	})
	if ev.ParamsChanged {
		rc.mu.Lock()
		u := rc.user
		rc.mu.Unlock()
		if u != nil && !u.sameParams(rc.params()) {
			slog.Info("rancher: tunnel params changed, restarting the cluster's controllers", "cluster", rc.id)
			rc.stopUserControllers("tunnel params changed")
		}
	}
	if rc.downstream() {
		go rc.fetchVersion()
	}
	rc.kickMgmt()
}

// params returns the cluster's current tunnel params (nil before the
// first main tunnel).
func (rc *rancherCluster) params() *TunnelParams {
	c, ok := rc.srv.s.Cluster(rc.id)
	if !ok {
		return nil
	}
	return c.Params
}

// onConnectedCheck is the clusterconnected controller's update after a
// GET /ping through the steve tunnel.
func (rc *rancherCluster) onConnectedCheck(connected bool) {
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if !rc.mgmtReady {
			return false
		}
		conds := &rec.Conditions
		if connected && conds.isTrue(condConnected) {
			return false
		}
		if !connected && conds.isFalse(condConnected) && conds.reason(condReady) == reasonDisconnected {
			return false
		}
		status := statusFalse
		if connected {
			status = statusTrue
		}
		changed := conds.setStatus(now, condConnected, status)
		if !connected && conds.isTrue(condProvisioned) {
			changed = conds.set(now, condReady, statusFalse, reasonDisconnected, msgAgentNotConnected) || changed
		}
		return changed
	})
}
