package main

// Steve's /v1/provisioning.cattle.io.clusters, the way the UI imports a
// cluster: the provisioning cluster keeps the client's labels and
// annotations, and a moment after its creation the provisioning controller
// creates the management cluster c-m-xxxxxxxx and writes its name into
// status.clusterName.

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

var errV1Exists = errors.New("provisioning cluster exists")

func (r *rancherServer) handleV1Create(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Metadata struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := readAPIBody(req, &body); err != nil {
		writeSteveError(w, http.StatusUnprocessableEntity, "InvalidBodyContent", err.Error())
		return
	}
	m := body.Metadata
	if m.Namespace == "" {
		m.Namespace = fleetWorkspace
	}
	if errs := validation.IsDNS1123Label(m.Name); len(errs) > 0 {
		writeSteveError(w, http.StatusUnprocessableEntity, "Invalid",
			`Cluster.provisioning.cattle.io "`+m.Name+`" is invalid: metadata.name: Invalid value: "`+m.Name+`": `+errs[0])
		return
	}
	rec := newMgmtRecord(time.Now(), "v1")
	rec.CreatorID = r.adminUserID()
	rec.Annotations = map[string]string{"provisioning.cattle.io/administrated": "false"}
	rec.Labels = map[string]string{}
	rec.V1 = &v1Meta{
		Name: m.Name, Namespace: m.Namespace, UID: newUUID(),
		Labels: cloneStringMap(m.Labels), Annotations: cloneStringMap(m.Annotations),
	}
	rc, err := r.createCluster(ClusterSpec{ID: "c-m-" + randomString(8), Name: m.Name}, rec, func() error {
		if r.v1Lookup(m.Namespace, m.Name) != nil {
			return errV1Exists
		}
		return nil
	})
	switch {
	case errors.Is(err, errV1Exists):
		writeSteveError(w, http.StatusConflict, "AlreadyExists", `clusters.provisioning.cattle.io "`+m.Name+`" already exists`)
		return
	case err != nil:
		writeSteveError(w, http.StatusInternalServerError, "ServerError", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, r.v1Object(apiBase(req), rc, time.Now()))
}

// v1Lookup finds the cluster whose provisioning object is ns/name.
func (r *rancherServer) v1Lookup(ns, name string) *rancherCluster {
	for _, id := range r.s.ClusterIDs() {
		rc := r.lookup(id)
		if rc == nil {
			continue
		}
		rc.mu.Lock()
		v1 := rc.rec.V1
		match := v1 != nil && v1.Namespace == ns && v1.Name == name
		rc.mu.Unlock()
		if match {
			return rc
		}
	}
	return nil
}

func (r *rancherServer) handleV1Get(w http.ResponseWriter, req *http.Request) {
	ns, name := req.PathValue("namespace"), req.PathValue("name")
	rc := r.v1Lookup(ns, name)
	if rc == nil {
		writeSteveError(w, http.StatusNotFound, "NotFound", `clusters.provisioning.cattle.io "`+name+`" not found`)
		return
	}
	writeJSON(w, http.StatusOK, r.v1Object(apiBase(req), rc, time.Now()))
}

func (r *rancherServer) handleV1Delete(w http.ResponseWriter, req *http.Request) {
	ns, name := req.PathValue("namespace"), req.PathValue("name")
	rc := r.v1Lookup(ns, name)
	if rc == nil {
		writeSteveError(w, http.StatusNotFound, "NotFound", `clusters.provisioning.cattle.io "`+name+`" not found`)
		return
	}
	obj := r.v1Object(apiBase(req), rc, time.Now())
	meta := obj["metadata"].(map[string]any)
	meta["deletionTimestamp"] = time.Now().UTC().Format(time.RFC3339)
	meta["state"] = map[string]any{"name": "removing", "error": false, "transitioning": true, "message": ""}
	if err := r.deleteCluster(rc.id); err != nil && !errors.Is(err, errUnknownCluster) {
		writeSteveError(w, http.StatusInternalServerError, "ServerError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

func (r *rancherServer) handleV1List(w http.ResponseWriter, req *http.Request) {
	base := apiBase(req)
	ns := req.PathValue("namespace")
	now := time.Now()
	data := []map[string]any{}
	for _, id := range r.s.ClusterIDs() {
		rc := r.cluster(id)
		if rc == nil {
			continue
		}
		rc.mu.Lock()
		v1 := rc.rec.V1
		ok := v1 != nil && (ns == "" || v1.Namespace == ns)
		rc.mu.Unlock()
		if ok {
			data = append(data, r.v1Object(base, rc, now))
		}
	}
	self := base + "/v1/provisioning.cattle.io.clusters"
	writeJSON(w, http.StatusOK, map[string]any{
		"type":         "collection",
		"links":        map[string]string{"self": self},
		"createTypes":  map[string]string{"provisioning.cattle.io.cluster": self},
		"actions":      map[string]any{},
		"resourceType": "provisioning.cattle.io.cluster",
		"revision":     strconv.FormatInt(now.UnixNano(), 10),
		"count":        len(data),
		"data":         data,
	})
}

// v1Object renders a provisioning cluster as steve does.
func (r *rancherServer) v1Object(base string, rc *rancherCluster, now time.Time) map[string]any {
	rc.mu.Lock()
	rec := rc.copyRecLocked()
	visibleAt := rc.mgmtVisibleAtLocked()
	sum := rc.summaryLocked(now)
	rc.mu.Unlock()
	v1 := rec.V1
	self := base + "/v1/provisioning.cattle.io.clusters/" + v1.Namespace + "/" + v1.Name
	annotations := cloneStringMap(v1.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	labels := cloneStringMap(v1.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	status := map[string]any{
		"fleetWorkspaceName": v1.Namespace,
		"observedGeneration": 1,
		"ready":              rec.Conditions.isTrue(condReady),
		"agentDeployed":      rec.Conditions.isTrue(condAgentDeployed),
		"conditions":         []any{},
	}
	if !now.Before(visibleAt) {
		status["clusterName"] = rc.id
		status["clientSecretName"] = v1.Name + "-kubeconfig"
		conds := make([]map[string]any, 0, len(rec.Conditions))
		for _, c := range rec.Conditions {
			conds = append(conds, map[string]any{
				"type": c.Type, "status": c.Status, "lastUpdateTime": c.LastUpdateTime,
				"reason": c.Reason, "message": c.Message,
				"error":         c.Reason == reasonError,
				"transitioning": c.Status == statusUnknown,
			})
		}
		status["conditions"] = conds
	}
	state := map[string]any{"name": sum.State, "error": sum.Error, "transitioning": sum.Transitioning, "message": sum.message()}
	if now.Before(visibleAt) {
		state = map[string]any{"name": "provisioning", "error": false, "transitioning": true, "message": ""}
	}
	return map[string]any{
		"id":   v1.Namespace + "/" + v1.Name,
		"type": "provisioning.cattle.io.cluster",
		"links": map[string]string{
			"self": self, "remove": self, "update": self,
			"view": base + "/apis/provisioning.cattle.io/v1/namespaces/" + v1.Namespace + "/clusters/" + v1.Name,
		},
		"apiVersion": "provisioning.cattle.io/v1",
		"kind":       "Cluster",
		"metadata": map[string]any{
			"name":              v1.Name,
			"namespace":         v1.Namespace,
			"uid":               v1.UID,
			"generation":        1,
			"resourceVersion":   strconv.FormatInt(rec.Created.Unix(), 10),
			"creationTimestamp": rec.Created.UTC().Format(time.RFC3339),
			"annotations":       annotations,
			"labels":            labels,
			"finalizers":        []string{"wrangler.cattle.io/provisioning-cluster-remove"},
			"state":             state,
		},
		"spec":   map[string]any{},
		"status": status,
	}
}
