package main

// What Rancher stores about a management cluster (and its provisioning
// cluster and registration tokens), persisted in Cluster.Ext["rancher"].

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// v1Meta is the provisioning.cattle.io Cluster in fleet-default.
type v1Meta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	UID         string            `json:"uid"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Created     time.Time         `json:"created"`
	// Mirror is true for the object Rancher creates for a v3 cluster.
	Mirror bool `json:"mirror,omitempty"`
}

// crtMeta is a ClusterRegistrationToken's bookkeeping (the value lives in
// the stand-in's token list).
type crtMeta struct {
	UUID    string    `json:"uuid"`
	Created time.Time `json:"created"`
}

// mgmtRecord is the management cluster.
type mgmtRecord struct {
	// API is how the cluster was created: v1, v3 or standin (control API).
	API         string             `json:"api"`
	UUID        string             `json:"uuid"`
	Created     time.Time          `json:"created"`
	CreatorID   string             `json:"creatorId"`
	Description string             `json:"description,omitempty"`
	Labels      map[string]string  `json:"labels,omitempty"`
	Annotations map[string]string  `json:"annotations,omitempty"`
	V1          *v1Meta            `json:"v1,omitempty"`
	Tokens      map[string]crtMeta `json:"tokens,omitempty"`

	// Status, as Rancher's controllers write it.
	Conditions          mgmtConditions    `json:"conditions"`
	Driver              string            `json:"driver,omitempty"`
	Version             map[string]string `json:"version,omitempty"`
	NodeCount           int               `json:"nodeCount"`
	Capacity            map[string]string `json:"capacity,omitempty"`
	Allocatable         map[string]string `json:"allocatable,omitempty"`
	AgentImage          string            `json:"agentImage,omitempty"`
	AgentFeatures       map[string]bool   `json:"agentFeatures,omitempty"`
	AppliedAgentEnvVars bool              `json:"appliedAgentEnvVars,omitempty"`
	TokenHash           string            `json:"tokenHash,omitempty"`
	// ProvisionerCreated is the provisioner's lifecycle "create" mark.
	ProvisionerCreated bool `json:"provisionerCreated,omitempty"`

	// Rancher-side objects the downstream writes refer to.
	SystemUserID   string `json:"systemUserId"`
	DefaultProject string `json:"defaultProject"`
	SystemProject  string `json:"systemProject"`
}

func newMgmtRecord(created time.Time, api string) mgmtRecord {
	return mgmtRecord{
		API:            api,
		UUID:           newUUID(),
		Created:        created.UTC(),
		Conditions:     mgmtConditions{},
		SystemUserID:   "u-" + randomString(10),
		DefaultProject: "p-" + randomString(5),
		SystemProject:  "p-" + randomString(5),
		Tokens:         map[string]crtMeta{},
	}
}

func (rec *mgmtRecord) token(name string, now time.Time) crtMeta {
	if rec.Tokens == nil {
		rec.Tokens = map[string]crtMeta{}
	}
	t, ok := rec.Tokens[name]
	if !ok {
		t = crtMeta{UUID: newUUID(), Created: now.UTC()}
		rec.Tokens[name] = t
	}
	return t
}

// displayName is the v3 "name" (spec.displayName).
func (rec *mgmtRecord) displayName(standinName string) string {
	if rec.V1 != nil && !rec.V1.Mirror {
		return rec.V1.Name
	}
	return standinName
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

func cloneStringMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
