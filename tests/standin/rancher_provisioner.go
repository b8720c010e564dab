package main

// The cluster provisioner (Pending, Provisioned, Updated) and the stats
// aggregator (version, node counts, capacity) of an imported cluster
// (rancher-server-side §2 steps 2, 5, 9).

import (
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/version"
)

// provisionerCreateConditions is the start of the provisioner's Create:
// Pending and Provisioned Unknown, Waiting Unknown with its message.
func (rc *rancherCluster) provisionerCreateConditions(rec *mgmtRecord, now time.Time) bool {
	changed := rec.Conditions.createUnknownIfNotExists(now, condPending)
	changed = rec.Conditions.createUnknownIfNotExists(now, condProvisioned) || changed
	if rec.Conditions.status(condWaiting) == "" {
		changed = rec.Conditions.set(now, condWaiting, statusUnknown, "", msgWaitingForAPI) || changed
	}
	return changed
}

// provisionerSync runs the provisioner lifecycle on the cluster: nothing
// while the driver is unknown (no agent yet: "pending"); once an agent
// connected, Create marks Provisioned and Pending True but keeps failing
// with "waiting for full cluster configuration" (Provisioned reason
// Pending) until the version and at least one node are known; after Create
// succeeded, Updated follows the same rule.
func (rc *rancherCluster) provisionerSync() {
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if !rc.mgmtReady {
			return false
		}
		conds := &rec.Conditions
		changed := rc.provisionerCreateConditions(rec, now)
		if rec.Driver == "" {
			return changed
		}
		complete := rec.Version != nil && rec.NodeCount > 0
		if !rec.ProvisionerCreated {
			if complete {
				changed = conds.set(now, condProvisioned, statusTrue, "", "") || changed
				rec.ProvisionerCreated = true
				changed = true
			} else {
				changed = conds.set(now, condProvisioned, statusTrue, reasonPending, msgWaitingFullConfig) || changed
			}
			changed = conds.setStatus(now, condPending, statusTrue) || changed
			if !rec.ProvisionerCreated {
				return changed
			}
		}
		// The Updated lifecycle: update() again, then the same check.
		changed = conds.set(now, condProvisioned, statusTrue, "", "") || changed
		changed = conds.setStatus(now, condPending, statusTrue) || changed
		if complete {
			changed = conds.set(now, condUpdated, statusTrue, "", "") || changed
		} else if !conds.isFalse(condUpdated) {
			changed = conds.set(now, condUpdated, statusUnknown, reasonPending, msgWaitingFullConfig) || changed
		}
		return changed
	})
}

// fetchVersion is the stats aggregator's GET /version after a (re)connect
// (through a fresh client, as Rancher builds a new user context for it).
// The version must never change: every change is counted.
func (rc *rancherCluster) fetchVersion() {
	for attempt := 0; attempt < 5 && rc.ctx.Err() == nil; attempt++ {
		client, err := rc.directClient()
		if err == nil {
			var info *version.Info
			if info, err = client.Discovery().ServerVersion(); err == nil {
				rc.recordVersion(info)
				return
			}
		}
		rc.mu.Lock()
		rc.stats.versionErrors++
		rc.stats.lastVersionErr = err.Error()
		rc.mu.Unlock()
		if !rc.sleepFor(10 * time.Second) {
			return
		}
	}
}

// recordVersion stores status.version; every change is counted.
func (rc *rancherCluster) recordVersion(info *version.Info) {
	v := map[string]string{
		"major": info.Major, "minor": info.Minor, "gitVersion": info.GitVersion,
		"gitCommit": info.GitCommit, "gitTreeState": info.GitTreeState, "buildDate": info.BuildDate,
		"goVersion": info.GoVersion, "compiler": info.Compiler, "platform": info.Platform,
	}
	if info.EmulationMajor != "" {
		v["emulationMajor"], v["emulationMinor"] = info.EmulationMajor, info.EmulationMinor
	}
	if info.MinCompatibilityMajor != "" {
		v["minCompatibilityMajor"], v["minCompatibilityMinor"] = info.MinCompatibilityMajor, info.MinCompatibilityMinor
	}
	rc.mu.Lock()
	rc.stats.versionChecks++
	rc.stats.versionAt = time.Now().UTC()
	if rc.rec.Version != nil && !reflect.DeepEqual(rc.rec.Version, v) {
		rc.stats.versionChanges++
	}
	rc.mu.Unlock()
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if reflect.DeepEqual(rec.Version, v) {
			return false
		}
		rec.Version = v
		return true
	})
}

// sleepFor waits d; false when the cluster went away.
func (rc *rancherCluster) sleepFor(d time.Duration) bool {
	return rc.sleepUntil(time.Now().Add(d))
}

// setNodes is the node syncer and stats aggregator: the management Node
// count and the summed capacity of the downstream nodes.
func (rc *rancherCluster) setNodes(count int, capacity, allocatable map[string]string) {
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if rec.NodeCount == count && reflect.DeepEqual(rec.Capacity, capacity) && reflect.DeepEqual(rec.Allocatable, allocatable) {
			return false
		}
		rec.NodeCount, rec.Capacity, rec.Allocatable = count, capacity, allocatable
		return true
	})
}
