package main

// Cluster registration tokens (/v3/clusterregistrationtokens), the import
// URL they point at (/v3/import/<token>_<clusterId>.yaml) and the few
// settings agents and clients read.

import (
	"net/http"
	"strings"
	"time"
)

const fleetWorkspace = "fleet-default"

// crtFilled reports whether the CRT controller has filled the token's
// status (token, manifestUrl, commands) yet.
func (r *rancherServer) crtFilled(meta crtMeta, now time.Time) bool {
	return !now.Before(meta.Created.Add(r.opts.controllerDelay))
}

// v3Tokens renders the registration tokens of one cluster.
func (r *rancherServer) v3Tokens(base, clusterID string, now time.Time) []map[string]any {
	c, ok := r.s.Cluster(clusterID)
	rc := r.cluster(clusterID)
	if !ok || rc == nil {
		return nil
	}
	visibleAt := rc.mgmtVisibleAt()
	if now.Before(visibleAt) {
		return nil
	}
	var out []map[string]any
	changed := false
	for _, t := range c.Tokens {
		var meta crtMeta
		rc.mu.Lock()
		if m, ok := rc.rec.Tokens[t.Name]; ok {
			meta = m
		} else {
			// the controller creates default-token with the cluster
			meta = rc.rec.token(t.Name, visibleAt)
			changed = true
		}
		rc.mu.Unlock()
		out = append(out, r.v3Token(base, clusterID, t, meta, now))
	}
	if changed {
		rc.persist()
	}
	return out
}

func (r *rancherServer) v3Token(base, clusterID string, t ClusterToken, meta crtMeta, now time.Time) map[string]any {
	id := clusterID + ":" + t.Name
	self := base + "/v3/clusterRegistrationTokens/" + id
	created := meta.Created.UTC().Truncate(time.Second)
	v := map[string]any{
		"baseType":                   "clusterRegistrationToken",
		"clusterId":                  clusterID,
		"command":                    "",
		"created":                    created.Format(time.RFC3339),
		"createdTS":                  created.UnixMilli(),
		"creatorId":                  nil,
		"id":                         id,
		"insecureCommand":            "",
		"insecureNodeCommand":        "",
		"insecureWindowsNodeCommand": "",
		"links":                      map[string]string{"remove": self, "self": self, "update": self},
		"manifestUrl":                "",
		"name":                       t.Name,
		"namespaceId":                nil,
		"nodeCommand":                "",
		"state":                      "active",
		"token":                      "",
		"transitioning":              "no",
		"transitioningMessage":       "",
		"type":                       "clusterRegistrationToken",
		"uuid":                       meta.UUID,
		"windowsNodeCommand":         "",
	}
	if r.opts.version != rancher211 {
		v["tokenSecretName"] = "crt-token-" + t.Name
	}
	if !r.crtFilled(meta, now) {
		return v
	}
	url := r.serverURL()
	checksum := r.s.CAChecksum()
	manifest := url + "/v3/import/" + t.Token + "_" + clusterID + ".yaml"
	v["token"] = t.Token
	v["manifestUrl"] = manifest
	v["command"] = "kubectl apply -f " + manifest
	v["insecureCommand"] = "curl --insecure -sfL " + manifest + " | kubectl apply -f -"
	if r.opts.version == rancher211 {
		v["nodeCommand"] = "sudo docker run -d --privileged --restart=unless-stopped --net=host -v /etc/kubernetes:/etc/kubernetes -v /var/run:/var/run  rancher/rancher-agent:head --server " + url + " --token " + t.Token + " --ca-checksum " + checksum
		v["windowsNodeCommand"] = ""
	} else {
		v["nodeCommand"] = " curl -fL " + url + "/system-agent-install.sh | sudo  sh -s - --server " + url + " --label 'cattle.io/os=linux' --token " + t.Token + " --ca-checksum " + checksum
		v["insecureNodeCommand"] = " curl --insecure -fL " + url + "/system-agent-install.sh | sudo  sh -s - --server " + url + " --label 'cattle.io/os=linux' --token " + t.Token + " --ca-checksum " + checksum
		v["windowsNodeCommand"] = " curl.exe -fL " + url + "/wins-agent-install.ps1 -o install.ps1; Set-ExecutionPolicy Bypass -Scope Process -Force; ./install.ps1 -Server " + url + " -Label 'cattle.io/os=windows' -Token " + t.Token + " -Worker -CaChecksum " + checksum
		v["insecureWindowsNodeCommand"] = " curl.exe --insecure -fL " + url + "/wins-agent-install.ps1 -o install.ps1; Set-ExecutionPolicy Bypass -Scope Process -Force; ./install.ps1 -Server " + url + " -Label 'cattle.io/os=windows' -Token " + t.Token + " -Worker -CaChecksum " + checksum
	}
	return v
}

func (r *rancherServer) handleV3ListTokens(w http.ResponseWriter, req *http.Request) {
	base := apiBase(req)
	now := time.Now()
	clusterID := req.PathValue("id")
	q := req.URL.Query()
	if clusterID == "" {
		clusterID = q.Get("clusterId")
	} else {
		q.Set("clusterId", clusterID)
		req.URL.RawQuery = q.Encode()
	}
	var data []map[string]any
	for _, id := range r.s.ClusterIDs() {
		if clusterID != "" && id != clusterID {
			continue
		}
		data = append(data, r.v3Tokens(base, id, now)...)
	}
	writeJSON(w, http.StatusOK, normanCollection(req, base, "clusterRegistrationToken", data, func(col map[string]any) {
		col["createTypes"] = map[string]string{"clusterRegistrationToken": base + "/v3/clusterregistrationtokens"}
	}))
}

func (r *rancherServer) handleV3GetToken(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	clusterID, name, _ := strings.Cut(id, ":")
	for _, t := range r.v3Tokens(apiBase(req), clusterID, time.Now()) {
		if t["name"] == name {
			writeJSON(w, http.StatusOK, t)
			return
		}
	}
	writeNormanError(w, http.StatusNotFound, "NotFound", `clusterregistrationtokens.management.cattle.io "`+name+`" not found`, "")
}

func (r *rancherServer) handleV3CreateToken(w http.ResponseWriter, req *http.Request) {
	var body struct {
		ClusterID string `json:"clusterId"`
		Name      string `json:"name"`
	}
	if err := readAPIBody(req, &body); err != nil {
		writeNormanError(w, http.StatusUnprocessableEntity, "InvalidBodyContent", err.Error(), "")
		return
	}
	if body.ClusterID == "" {
		writeNormanError(w, http.StatusUnprocessableEntity, "MissingRequired", "", "clusterId")
		return
	}
	rc := r.cluster(body.ClusterID)
	if rc == nil || time.Now().Before(rc.mgmtVisibleAt()) {
		writeNormanError(w, http.StatusForbidden, "PermissionDenied", "", "")
		return
	}
	name := body.Name
	if name == "" {
		name = "crt-" + randomString(5)
	}
	token, err := r.s.AddToken(body.ClusterID, name, "")
	if err != nil {
		writeNormanError(w, http.StatusInternalServerError, "ServerError", err.Error(), "")
		return
	}
	now := time.Now()
	var meta crtMeta
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		meta = rec.token(name, now)
		return true
	})
	writeJSON(w, http.StatusCreated, r.v3Token(apiBase(req), body.ClusterID, ClusterToken{Name: name, Token: token}, meta, now))
}

// handleImport serves the bootstrap manifest (unauthenticated). As in
// 2.13.8+/2.14.4, the cluster must exist and the token must be one of its
// registration tokens.
func (r *rancherServer) handleImport(w http.ResponseWriter, req *http.Request) {
	file := req.PathValue("file")
	name, ok := strings.CutSuffix(file, ".yaml")
	token, clusterID, found := strings.Cut(name, "_")
	if !ok || !found {
		http.NotFound(w, req)
		return
	}
	id, known := r.s.clusterByToken(token)
	if !known || id != clusterID || r.cluster(clusterID) == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("cluster not found or invalid token"))
		return
	}
	manifest, err := renderAgentManifest(agentManifestInput{
		Version: r.opts.version, ServerURL: r.serverURL(), Token: token,
		CAChecksum: r.s.CAChecksum(), InstallUUID: r.installUUID(),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(manifest))
}

// handleV3Setting serves a few settings (cacerts has its own handler).
func (r *rancherServer) handleV3Setting(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	values := map[string]string{
		"server-version":                 r.opts.version.serverVersion(),
		"server-url":                     r.serverURL(),
		"install-uuid":                   r.installUUID(),
		"agent-tls-mode":                 "strict",
		"ingress-ip-domain":              "sslip.io",
		"agent-image":                    agentImage(r.opts.version),
		"first-login":                    "false",
		"ui-pl":                          "rancher",
		"cluster-agent-default-affinity": "",
	}
	value, ok := values[name]
	if !ok {
		writeNormanError(w, http.StatusNotFound, "NotFound", `settings.management.cattle.io "`+name+`" not found`, "")
		return
	}
	// Only a few settings are on the unauthenticated router.
	public := name == "first-login" || name == "ui-pl"
	if !public && !r.tokenValid(req) {
		writeAuthError(w, http.StatusUnauthorized, "must authenticate")
		return
	}
	self := apiBase(req) + "/v3/settings/" + name
	writeJSON(w, http.StatusOK, map[string]any{
		"actions": map[string]any{}, "baseType": "setting", "creatorId": nil, "customized": false,
		"default": value, "id": name, "labels": map[string]any{}, "links": map[string]string{"self": self},
		"name": name, "source": "", "type": "setting", "value": value,
	})
}
