package main

// What the benchmarks (`python -m bench`, see bench/README.md) need from
// `standin serve` beyond the tests:
//
//   - `--agent-deploy=false`: clusterdeploy stops short of the agent
//     redeploy (impersonation set-up and in-process `kubectl apply`). Every
//     other request Rancher makes downstream stays (informers, probes,
//     RBAC writes, the clusterdeploy API check and image read-back). The
//     redeploy happens once per cluster and costs the stand-in about a
//     CPU-second of OpenAPI parsing in kubectl, which on a small machine
//     would dominate a run with a thousand clusters; without it the cluster
//     goes active with AgentDeployed absent, as one without nodes would.
//   - `--downstream-held`: Rancher's downstream requests (what
//     --downstream=false turns off) wait until the benchmark releases them
//     with POST /standin/bench/downstream {"clusters"?:[id...]} (the given
//     clusters, or all; {"unhold":true} only stops holding new ones, and
//     releases nothing held): the tunnels come up and are pinged, but nothing is
//     asked through them, so one fleet can be measured idle, then loaded.
//     Releasing does what the first main-tunnel connect would have done
//     (GET /version) and kicks the cluster's controllers; releasing every
//     cluster at once is the burst of a Rancher restart.
//   - GET /standin/bench/summary: the fleet as Rancher sees it in one small
//     JSON object (counts, not per-cluster views), cheap enough to poll
//     with thousands of clusters, plus the stand-in's own Go memory.
//   - the latency endpoints of bench_latency.go.

import (
	"flag"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// benchAgentDeploy is --agent-deploy.
var benchAgentDeploy = true

// Holding Rancher's downstream requests (see benchHeld): benchHoldFlag is
// --downstream-held; while benchHoldAll is set every cluster is held that
// is not in benchReleased.
var (
	benchHoldFlag bool
	benchHoldAll  atomic.Bool
	benchReleased sync.Map
	// benchStillHeld: clusters held when new ones stopped being held.
	benchStillHeld sync.Map
)

// benchHeld reports whether Rancher's downstream requests to a cluster
// are still held back.
func benchHeld(id string) bool {
	if !benchHoldAll.Load() {
		_, held := benchStillHeld.Load(id)
		return held
	}
	_, released := benchReleased.Load(id)
	return !released
}

func init() {
	serveFlagHooks = append(serveFlagHooks, func(fs *flag.FlagSet) {
		fs.BoolVar(&benchAgentDeploy, "agent-deploy", benchAgentDeploy,
			"clusterdeploy redeploys the agent (impersonation set-up and kubectl apply); false skips that step only (benchmarks)")
		fs.BoolVar(&benchHoldFlag, "downstream-held", false,
			"hold Rancher's downstream requests until POST /standin/bench/downstream releases them (benchmarks)")
	})
	controlExtensions = append(controlExtensions, func(s *Standin, mux *http.ServeMux) {
		r := rancherFor(s)
		benchHoldAll.Store(benchHoldFlag)
		mux.HandleFunc("GET /standin/bench/summary", r.handleBenchSummary)
		mux.HandleFunc("POST /standin/bench/downstream", r.handleBenchRelease)
		mux.HandleFunc("POST /standin/clusters/{id}/bench/latency", r.handleBenchLatency)
		mux.HandleFunc("POST /standin/bench/burst", r.handleBenchBurst)
	})
}

// benchInformerTotals sums the informers of every cluster.
type benchInformerTotals struct {
	Informers  int `json:"informers"`
	Synced     int `json:"synced"`
	Lists      int `json:"lists"`
	Watches    int `json:"watches"`
	WatchLists int `json:"watchLists"`
	Events     int `json:"events"`
	Errors     int `json:"errors"`
}

// benchProbeTotals sums the health syncers of every cluster.
type benchProbeTotals struct {
	Checks   int   `json:"checks"`
	Requests int   `json:"requests"`
	OK       int   `json:"ok"`
	Failed   int   `json:"failed"`
	Skipped  int   `json:"skipped"`
	MaxMs    int64 `json:"maxLastMs"`
	// ClustersOK counts clusters with at least one successful check.
	ClustersOK int `json:"clustersOk"`
}

// benchClusterLine is one cluster in the summary's optional list.
type benchClusterLine struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Phase    string `json:"phase"`
	Synced   bool   `json:"synced"`
	ProbeOK  int    `json:"probeOk"`
	Deployed int    `json:"deployed"`
}

// handleBenchSummary answers GET /standin/bench/summary[?clusters=1].
func (r *rancherServer) handleBenchSummary(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	states := map[string]int{}
	phases := map[string]int{}
	var inf benchInformerTotals
	var probe benchProbeTotals
	var lines []benchClusterLine
	clusters, allSynced, mainLive, steveLive, deployed := 0, 0, 0, 0, 0
	withLines := req.URL.Query().Get("clusters") != ""
	r.clusters.Range(func(_, v any) bool {
		rc := v.(*rancherCluster)
		clusters++
		rc.mu.Lock()
		state := rc.summaryLocked(now).State
		uc := rc.user
		mainLive += rc.mainLive
		steveLive += rc.steveLive
		succeeded := rc.deploy.Succeeded
		name := rc.rec.displayName("")
		rc.mu.Unlock()
		states[state]++
		if succeeded > 0 {
			deployed++
		}
		line := benchClusterLine{ID: rc.id, Name: name, State: state, Deployed: succeeded}
		if uc != nil {
			uc.mu.Lock()
			line.Phase = uc.phase
			p := uc.probe
			uc.mu.Unlock()
			probe.Checks += p.Checks
			probe.Requests += p.Requests
			probe.OK += p.OK
			probe.Failed += p.Failed
			probe.Skipped += p.Skipped
			probe.MaxMs = max(probe.MaxMs, p.LastMillis)
			if p.OK > 0 {
				probe.ClustersOK++
			}
			line.ProbeOK = p.OK
			synced := true
			for _, ri := range uc.informers.list {
				ri.mu.Lock()
				s := ri.stats
				ri.mu.Unlock()
				inf.Informers++
				inf.Lists += s.Lists
				inf.Watches += s.Watches
				inf.WatchLists += s.WatchLists
				inf.Events += s.Events
				inf.Errors += s.Errors
				if ri.informer.HasSynced() {
					inf.Synced++
				} else {
					synced = false
				}
			}
			line.Synced = synced
			if synced {
				allSynced++
			}
		} else {
			line.Phase = "none"
		}
		phases[line.Phase]++
		if withLines {
			lines = append(lines, line)
		}
		return true
	})
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := map[string]any{
		"at":             now.UTC(),
		"clusters":       clusters,
		"states":         states,
		"controllers":    phases,
		"informersAll":   allSynced,
		"informers":      inf,
		"probe":          probe,
		"agentDeployed":  deployed,
		"agentDeploy":    benchAgentDeploy,
		"liveSessions":   map[string]int{"main": mainLive, "steve": steveLive},
		"rancherVersion": string(r.opts.version),
		"go": map[string]any{
			"heapAlloc":  ms.HeapAlloc,
			"heapInuse":  ms.HeapInuse,
			"sys":        ms.Sys,
			"numGC":      ms.NumGC,
			"goroutines": runtime.NumGoroutine(),
		},
	}
	if withLines {
		sort.Slice(lines, func(i, j int) bool { return lines[i].ID < lines[j].ID })
		out["clusterList"] = lines
	}
	writeJSON(w, http.StatusOK, out)
}

// handleBenchRelease answers POST /standin/bench/downstream
// {"clusters"?:[id...]}: release the given clusters (default: all).
func (r *rancherServer) handleBenchRelease(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Clusters []string `json:"clusters"`
		// Unhold lets clusters made from now on go unheld, and changes
		// nothing for the others.
		Unhold bool `json:"unhold"`
	}
	if err := readBody(req, &body); err != nil {
		writeControlError(w, err)
		return
	}
	if body.Unhold {
		if benchHoldAll.Load() {
			r.clusters.Range(func(k, _ any) bool {
				if _, released := benchReleased.Load(k); !released {
					benchStillHeld.Store(k, true)
				}
				return true
			})
			benchHoldAll.Store(false)
		}
		writeJSON(w, http.StatusOK, map[string]any{"released": 0, "held": false})
		return
	}
	var targets []*rancherCluster
	if len(body.Clusters) > 0 {
		var err error
		if targets, err = r.lookupAll(body.Clusters); err != nil {
			writeControlError(w, err)
			return
		}
		for _, rc := range targets {
			benchReleased.Store(rc.id, true)
			benchStillHeld.Delete(rc.id)
		}
	} else {
		benchHoldAll.Store(false)
		benchStillHeld.Clear()
		r.clusters.Range(func(_, v any) bool {
			targets = append(targets, v.(*rancherCluster))
			return true
		})
	}
	for _, rc := range targets {
		rc.mu.Lock()
		live := rc.mainLive > 0
		rc.mu.Unlock()
		if live {
			go rc.fetchVersion()
		}
		rc.kickMgmt()
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": len(targets), "held": benchHoldAll.Load()})
}
