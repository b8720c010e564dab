package main

// The Rancher emulation's registry: one rancherServer per Standin, one
// rancherCluster per cluster. It hooks into `standin serve` (routes, tunnel
// events, the Connected check, the control API) and persists what Rancher
// would keep in its own database (management records, conditions, the API
// token) with the stand-in's state.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

const rancherExtName = "rancher"

// rancherGlobal is the emulation's persisted, server-wide data.
type rancherGlobal struct {
	APIToken    string `json:"apiToken"`
	InstallUUID string `json:"installUUID"`
	AdminUserID string `json:"adminUserID"`
}

type rancherServer struct {
	s    *Standin
	opts rancherOptions

	mu      sync.Mutex
	global  rancherGlobal
	started bool
	// createMu serialises the creation of cluster emulations (and the
	// name checks that go with it); it is taken before the stand-in's lock.
	createMu sync.Mutex
	// clusters maps id -> *rancherCluster; read without locks (the view
	// hook runs with the stand-in locked).
	clusters sync.Map
}

var (
	rancherServersMu sync.Mutex
	rancherServers   = map[*Standin]*rancherServer{}
)

// rancherFor returns the emulation of a stand-in, creating it on first use.
func rancherFor(s *Standin) *rancherServer {
	rancherServersMu.Lock()
	defer rancherServersMu.Unlock()
	r := rancherServers[s]
	if r == nil {
		r = &rancherServer{s: s, opts: rancherFlags}
		rancherServers[s] = r
	}
	return r
}

func init() {
	stateHooks = append(stateHooks, stateHook{Name: rancherExtName, Load: func(s *Standin, data json.RawMessage) error {
		r := rancherFor(s)
		if len(data) == 0 {
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return json.Unmarshal(data, &r.global)
	}})
	serveExtensions = append(serveExtensions, func(s *Standin, mux *http.ServeMux) {
		r := rancherFor(s)
		r.start()
		r.routes(mux)
	})
	controlExtensions = append(controlExtensions, func(s *Standin, mux *http.ServeMux) {
		rancherFor(s).controlRoutes(mux)
	})
	readinessHooks = append(readinessHooks, func(s *Standin, ready map[string]any) {
		r := rancherFor(s)
		ready["apiToken"] = r.apiToken()
		ready["serverURL"] = r.serverURL()
		ready["rancherVersion"] = string(r.opts.version)
	})
	connectedCheckHooks = append(connectedCheckHooks, func(s *Standin, id string, connected bool) {
		if rc := rancherFor(s).cluster(id); rc != nil {
			rc.onConnectedCheck(connected)
		}
	})
	clusterViewHooks = append(clusterViewHooks, func(s *Standin, c *Cluster, view map[string]any) {
		// Runs with the stand-in locked: take only the cluster's own lock.
		if rc := rancherFor(s).lookup(c.ID); rc != nil {
			rc.addView(view)
		}
	})
}

// start fills in generated settings, attaches to tunnel events and the
// Connected check, and brings up every known cluster.
func (r *rancherServer) start() {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return
	}
	r.started = true
	changed := false
	if r.global.APIToken == "" {
		r.global.APIToken = "token-" + randomString(5) + ":" + randomString(54)
		changed = true
	}
	if r.global.InstallUUID == "" {
		r.global.InstallUUID = newUUID()
		changed = true
	}
	if r.global.AdminUserID == "" {
		r.global.AdminUserID = "user-" + randomString(5)
		changed = true
	}
	r.mu.Unlock()
	if changed {
		r.saveGlobal()
	}
	r.s.OnTunnelEvent(r.onTunnelEvent)
	for _, id := range r.s.ClusterIDs() {
		r.cluster(id)
	}
	go r.sweep()
}

func (r *rancherServer) saveGlobal() {
	r.mu.Lock()
	raw, err := json.Marshal(r.global)
	r.mu.Unlock()
	if err != nil {
		panic(err)
	}
	r.s.SetStateExt(rancherExtName, raw)
}

// apiToken is the token the management API accepts.
func (r *rancherServer) apiToken() string {
	if r.opts.apiToken != "" {
		return r.opts.apiToken
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.global.APIToken
}

// serverURL is the server-url setting.
func (r *rancherServer) serverURL() string {
	if r.opts.serverURL != "" {
		return r.opts.serverURL
	}
	return r.s.URL
}

func (r *rancherServer) lookup(id string) *rancherCluster {
	v, ok := r.clusters.Load(id)
	if !ok {
		return nil
	}
	return v.(*rancherCluster)
}

// lookupAll resolves ids to clusters; errUnknownCluster if any is unknown.
func (r *rancherServer) lookupAll(ids []string) ([]*rancherCluster, error) {
	out := make([]*rancherCluster, 0, len(ids))
	for _, id := range ids {
		rc := r.lookup(id)
		if rc == nil {
			return nil, errUnknownCluster
		}
		out = append(out, rc)
	}
	return out, nil
}

// cluster returns the emulation of a stand-in cluster, bringing it up on
// first use (clusters made through the control API or loaded from the
// state get a record then); nil when the stand-in has no such cluster.
func (r *rancherServer) cluster(id string) *rancherCluster {
	if rc := r.lookup(id); rc != nil {
		return rc
	}
	r.createMu.Lock()
	if rc := r.lookup(id); rc != nil {
		r.createMu.Unlock()
		return rc
	}
	c, ok := r.s.Cluster(id)
	if !ok {
		r.createMu.Unlock()
		return nil
	}
	var rec mgmtRecord
	if raw := c.Ext[rancherExtName]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &rec); err != nil {
			slog.Error("rancher: bad persisted record, starting afresh", "cluster", id, "error", err)
			rec = mgmtRecord{}
		}
	}
	fresh := rec.Created.IsZero()
	if fresh {
		rec = newMgmtRecord(c.CreatedAt, "standin")
	}
	rc := newRancherCluster(r, id, rec)
	r.clusters.Store(id, rc)
	r.createMu.Unlock()
	if fresh {
		rc.persist()
	}
	rc.run()
	return rc
}

// createCluster creates a stand-in cluster with a management record;
// check runs first, under the creation lock (name uniqueness).
func (r *rancherServer) createCluster(spec ClusterSpec, rec mgmtRecord, check func() error) (*rancherCluster, error) {
	r.createMu.Lock()
	if check != nil {
		if err := check(); err != nil {
			r.createMu.Unlock()
			return nil, err
		}
	}
	c, err := r.s.CreateCluster(spec)
	if err != nil {
		r.createMu.Unlock()
		return nil, err
	}
	rec.Created = c.CreatedAt
	rc := newRancherCluster(r, c.ID, rec)
	r.clusters.Store(c.ID, rc)
	r.createMu.Unlock()
	rc.persist()
	rc.run()
	return rc, nil
}

// forget stops the emulation of a deleted cluster.
func (r *rancherServer) forget(id string) {
	if v, ok := r.clusters.LoadAndDelete(id); ok {
		v.(*rancherCluster).stop()
	}
}

// sweep notices clusters deleted behind the emulation's back (control API).
func (r *rancherServer) sweep() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.s.Context().Done():
			r.clusters.Range(func(_, v any) bool {
				v.(*rancherCluster).stop()
				return true
			})
			return
		case <-t.C:
		}
		r.sweepOnce()
	}
}

// sweepOnce forgets the emulations of clusters the state no longer has.
// Under the creation lock: a cluster created between the snapshot of the
// state and the walk over the emulations would otherwise be forgotten.
func (r *rancherServer) sweepOnce() {
	r.createMu.Lock()
	live := map[string]bool{}
	for _, id := range r.s.ClusterIDs() {
		live[id] = true
	}
	var gone []string
	r.clusters.Range(func(k, _ any) bool {
		if id := k.(string); !live[id] {
			gone = append(gone, id)
		}
		return true
	})
	r.createMu.Unlock()
	// Stopping an emulation may wait for goroutines that look clusters up.
	for _, id := range gone {
		r.forget(id)
	}
}

// deleteCluster deletes a cluster as Rancher does: its tunnels close, its
// tokens stop working, its controllers stop.
func (r *rancherServer) deleteCluster(id string) error {
	r.forget(id)
	return r.s.DeleteCluster(id)
}

func (r *rancherServer) onTunnelEvent(ev TunnelEvent) {
	rc := r.cluster(ev.ClusterID)
	if rc == nil {
		return
	}
	rc.onTunnelEvent(ev)
}

// clusters returns every cluster's emulation, in id order.
func (r *rancherServer) allClusters() []*rancherCluster {
	var out []*rancherCluster
	for _, id := range r.s.ClusterIDs() {
		if rc := r.cluster(id); rc != nil {
			out = append(out, rc)
		}
	}
	return out
}

// context is cancelled when the stand-in stops.
func (r *rancherServer) context() context.Context { return r.s.Context() }

func (r *rancherServer) adminUserID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.global.AdminUserID
}

func (r *rancherServer) installUUID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.global.InstallUUID
}

func newUUID() string {
	b := []byte(randomHex(32))
	return fmt.Sprintf("%s-%s-4%s-a%s-%s", b[0:8], b[8:12], b[13:16], b[17:20], b[20:32])
}
