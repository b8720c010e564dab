package main

// Norman's /v3 API for clusters: create (c-xxxxx ids), list (filters,
// sort, limit/marker pagination with a `next` URL), get, delete, shaped
// like the recorded v3-cluster-*.json.

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// errNameNotUnique is norman's NotUnique on "Cluster name".
var errNameNotUnique = errors.New("cluster name not unique")

func (r *rancherServer) handleV3CreateCluster(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Name        string            `json:"name"`
		Description string            `json:"description"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := readAPIBody(req, &body); err != nil {
		writeNormanError(w, http.StatusUnprocessableEntity, "InvalidBodyContent", err.Error(), "")
		return
	}
	if body.Name == "" {
		writeNormanError(w, http.StatusUnprocessableEntity, "MissingRequired", "", "name")
		return
	}
	rec := newMgmtRecord(time.Now(), "v3")
	rec.CreatorID = r.adminUserID()
	rec.Description = body.Description
	rec.Labels = cloneStringMap(body.Labels)
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	rec.Labels["cattle.io/creator"] = "norman"
	rec.Annotations = cloneStringMap(body.Annotations)
	rc, err := r.createCluster(ClusterSpec{Name: body.Name}, rec, func() error {
		if r.displayNameTaken(body.Name) {
			return errNameNotUnique
		}
		return nil
	})
	switch {
	case errors.Is(err, errNameNotUnique):
		writeNormanError(w, http.StatusUnprocessableEntity, "NotUnique", "", "Cluster name")
		return
	case err != nil:
		writeNormanError(w, http.StatusInternalServerError, "ServerError", err.Error(), "")
		return
	}
	// Rancher mirrors a legacy cluster as provisioning cluster
	// fleet-default/<id>.
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		rec.V1 = &v1Meta{
			Name: rc.id, Namespace: fleetWorkspace, UID: newUUID(), Created: rec.Created, Mirror: true,
			Labels:      cloneStringMap(rec.Labels),
			Annotations: map[string]string{"provisioning.cattle.io/management-cluster-display-name": body.Name},
		}
		return true
	})
	view, ok := r.v3Cluster(apiBase(req), rc.id, time.Now())
	if !ok {
		writeNormanError(w, http.StatusNotFound, "NotFound", "", "")
		return
	}
	writeJSON(w, http.StatusCreated, view)
}

// displayNameTaken reports whether a management cluster (or a pending v1
// cluster) has that display name, ignoring case.
func (r *rancherServer) displayNameTaken(name string) bool {
	for _, id := range r.s.ClusterIDs() {
		c, ok := r.s.Cluster(id)
		rc := r.lookup(id)
		if !ok || rc == nil {
			continue
		}
		rc.mu.Lock()
		taken := strings.EqualFold(rc.rec.displayName(c.Name), name)
		rc.mu.Unlock()
		if taken {
			return true
		}
	}
	return false
}

func (r *rancherServer) handleV3GetCluster(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	view, ok := r.v3Cluster(apiBase(req), id, time.Now())
	if !ok {
		writeNormanError(w, http.StatusNotFound, "NotFound", `clusters.management.cattle.io "`+id+`" not found`, "")
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (r *rancherServer) handleV3DeleteCluster(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	view, ok := r.v3Cluster(apiBase(req), id, time.Now())
	if !ok {
		writeNormanError(w, http.StatusNotFound, "NotFound", `clusters.management.cattle.io "`+id+`" not found`, "")
		return
	}
	if err := r.deleteCluster(id); err != nil {
		writeNormanError(w, http.StatusNotFound, "NotFound", `clusters.management.cattle.io "`+id+`" not found`, "")
		return
	}
	view["state"] = "removing"
	view["transitioning"] = "yes"
	writeJSON(w, http.StatusOK, view)
}

// v3ListReserved are the query keys that are not filters.
var v3ListReserved = map[string]bool{"limit": true, "marker": true, "sort": true, "order": true, "_": true}

func (r *rancherServer) handleV3ListClusters(w http.ResponseWriter, req *http.Request) {
	base := apiBase(req)
	now := time.Now()
	var data []map[string]any
	for _, id := range r.s.ClusterIDs() {
		if view, ok := r.v3Cluster(base, id, now); ok {
			data = append(data, view)
		}
	}
	writeJSON(w, http.StatusOK, normanCollection(req, base, "cluster", data, func(col map[string]any) {
		col["createTypes"] = map[string]string{"cluster": base + "/v3/clusters"}
		col["actions"] = map[string]string{"createFromTemplate": base + "/v3/clusters?action=createFromTemplate"}
	}))
}

// normanCollection filters (equality on top-level fields), sorts (by id
// unless ?sort=), and paginates data like norman: limit (default 1000,
// -1 or above 10000 means 10000) and marker, with next/previous/first/last
// URLs when the page is partial.
func normanCollection(req *http.Request, base, resourceType string, data []map[string]any, extra func(map[string]any)) map[string]any {
	q := req.URL.Query()
	filters := map[string]any{}
	for key, vals := range q {
		if v3ListReserved[key] || len(vals) == 0 {
			continue
		}
		want := vals[0]
		filters[key] = []map[string]string{{"modifier": "eq", "value": want}}
		kept := data[:0]
		for _, item := range data {
			if s, ok := item[key].(string); ok && s == want {
				kept = append(kept, item)
			}
		}
		data = kept
	}
	sortField := q.Get("sort")
	if sortField == "" {
		sortField = "id"
	}
	desc := q.Get("order") == "desc"
	sort.SliceStable(data, func(i, j int) bool {
		a, _ := data[i][sortField].(string)
		b, _ := data[j][sortField].(string)
		if desc {
			return b < a
		}
		return a < b
	})
	limit := int64(1000)
	if s := q.Get("limit"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			switch {
			case n > 10000 || n == -1:
				limit = 10000
			case n >= 0:
				limit = n
			}
		}
	}
	total := int64(len(data))
	pagination := map[string]any{"limit": limit, "total": total}
	start := int64(0)
	if marker := q.Get("marker"); marker != "" {
		for i, item := range data {
			if item["id"] == marker {
				start = int64(i)
				break
			}
		}
	}
	end := min(start+limit, total)
	pageURL := func(i int64) string {
		v := url.Values{}
		for k, vals := range q {
			v[k] = vals
		}
		v.Set("marker", data[i]["id"].(string))
		return base + req.URL.Path + "?" + v.Encode()
	}
	if total > 0 && (start > 0 || end < total) {
		pagination["partial"] = true
		pagination["first"] = pageURL(0)
		if prev := max(start-limit, 0); prev < start {
			pagination["previous"] = pageURL(prev)
		}
		if end > start && end < total {
			pagination["next"] = pageURL(end)
		}
		if last := total - limit; last > 0 && last < total {
			pagination["last"] = pageURL(last)
		}
	}
	page := data
	if total > 0 {
		page = data[start:end]
	}
	if page == nil {
		page = []map[string]any{}
	}
	col := map[string]any{
		"type":         "collection",
		"resourceType": resourceType,
		"links":        map[string]string{"self": base + req.URL.Path},
		"actions":      map[string]string{},
		"createTypes":  map[string]string{},
		"data":         page,
		"filters":      filters,
		"pagination":   pagination,
		"sort": map[string]any{
			"order":   map[bool]string{false: "asc", true: "desc"}[desc],
			"reverse": base + req.URL.Path + "?order=" + map[bool]string{false: "desc", true: "asc"}[desc],
		},
	}
	if extra != nil {
		extra(col)
	}
	return col
}

// v3Cluster renders one management cluster; false when there is none
// (yet) by that id.
func (r *rancherServer) v3Cluster(base, id string, now time.Time) (map[string]any, bool) {
	c, ok := r.s.Cluster(id)
	if !ok {
		return nil, false
	}
	rc := r.cluster(id)
	if rc == nil {
		return nil, false
	}
	rc.mu.Lock()
	visibleAt := rc.mgmtVisibleAtLocked()
	rec := rc.copyRecLocked()
	sum := rc.summaryLocked(now)
	rc.mu.Unlock()
	if now.Before(visibleAt) {
		return nil, false
	}
	self := base + "/v3/clusters/" + id
	links := map[string]string{"self": self, "remove": self, "update": self,
		"shell": strings.Replace(self, "https://", "wss://", 1) + "?shell=true"}
	for _, sub := range []string{"apiServices", "clusterRegistrationTokens", "clusterRoleTemplateBindings", "namespaces",
		"nodePools", "nodes", "persistentVolumes", "projects", "storageClasses", "subscribe", "tokens"} {
		links[sub] = self + "/" + strings.ToLower(sub)
	}
	annotations := cloneStringMap(rec.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	labels := cloneStringMap(rec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	conds := rec.Conditions
	if conds == nil {
		conds = mgmtConditions{}
	}
	created := visibleAt.UTC().Truncate(time.Second)
	v := map[string]any{
		"actions": map[string]string{
			"generateKubeconfig": self + "?action=generateKubeconfig",
			"importYaml":         self + "?action=importYaml",
		},
		"annotations":                         annotations,
		"appliedEnableNetworkPolicy":          false,
		"baseType":                            "cluster",
		"clusterTemplateId":                   nil,
		"clusterTemplateRevisionId":           nil,
		"conditions":                          conds,
		"created":                             created.Format(time.RFC3339),
		"createdTS":                           created.UnixMilli(),
		"creatorId":                           nullIfEmpty(rec.CreatorID),
		"defaultClusterRoleForProjectMembers": nil,
		"description":                         rec.Description,
		"dockerRootDir":                       "/var/lib/docker",
		"enableNetworkPolicy":                 false,
		"fleetWorkspaceName":                  fleetWorkspace,
		"id":                                  id,
		"internal":                            false,
		"istioEnabled":                        false,
		"labels":                              labels,
		"links":                               links,
		"linuxWorkerCount":                    rec.NodeCount,
		"name":                                rec.displayName(c.Name),
		"nodeCount":                           rec.NodeCount,
		"nodeVersion":                         0,
		"state":                               sum.State,
		"transitioning":                       sum.transitioning(),
		"transitioningMessage":                sum.message(),
		"type":                                "cluster",
		"uuid":                                rec.UUID,
		"windowsPreferedCluster":              false,
		"windowsWorkerCount":                  0,
	}
	if rec.Driver != "" {
		v["driver"] = rec.Driver
		v["provider"] = ""
	}
	if c.Params != nil {
		v["apiEndpoint"] = "https://" + c.Params.Address
		v["caCert"] = c.Params.CACert
		v["serviceAccountTokenSecret"] = "cluster-serviceaccounttoken-" + rbacName("", id, c.Params.Token)[:5]
	}
	if rec.Version != nil {
		version := map[string]any{"type": "/v3/schemas/info"}
		for k, val := range rec.Version {
			version[k] = val
		}
		v["version"] = version
	}
	if rec.Capacity != nil {
		v["capacity"] = rec.Capacity
	}
	if rec.Allocatable != nil {
		v["allocatable"] = rec.Allocatable
	}
	if rec.AgentImage != "" {
		v["agentImage"] = rec.AgentImage
		v["agentImageOverride"] = ""
		v["agentFeatures"] = rec.AgentFeatures
	}
	if rec.AppliedAgentEnvVars {
		env := func(name, value string) map[string]string {
			return map[string]string{"name": name, "type": "/v3/schemas/envVar", "value": value}
		}
		v["appliedAgentEnvVars"] = []map[string]string{
			env("CATTLE_SERVER_VERSION", r.opts.version.serverVersion()),
			env("CATTLE_INSTALL_UUID", r.installUUID()),
			env("CATTLE_INGRESS_IP_DOMAIN", "sslip.io"),
		}
	}
	return v, true
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
