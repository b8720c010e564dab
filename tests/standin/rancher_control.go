package main

// The emulation's part of the test-control API: what GET
// /standin/clusters/{id} shows about Rancher's view of a cluster, and
// endpoints that drive the downstream API through the main tunnel the way
// Rancher reaches it (client-go suite, kubectl).

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func (r *rancherServer) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /standin/clusters/{id}/kubesuite", r.handleKubeSuite)
	mux.HandleFunc("POST /standin/clusters/{id}/kubectl", r.handleKubectl)
	mux.HandleFunc("GET /standin/clusters/{id}/agent-manifest", r.handleAgentManifest)
	mux.HandleFunc("GET /standin/rancher", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"apiToken":       r.apiToken(),
			"serverURL":      r.serverURL(),
			"rancherVersion": string(r.opts.version),
			"serverVersion":  r.opts.version.serverVersion(),
			"adminUserId":    r.adminUserID(),
			"installUUID":    r.installUUID(),
			"downstream":     r.opts.downstream,
			"probeInterval":  r.opts.probeInterval.String(),
		})
	})
}

// addView adds Rancher's view of the cluster to its control-API JSON. It
// runs with the stand-in locked: only the cluster's own locks are taken.
func (rc *rancherCluster) addView(view map[string]any) {
	now := time.Now()
	rc.mu.Lock()
	rec := rc.rec
	sum := rc.summaryLocked(now)
	conds := append(mgmtConditions{}, rec.Conditions...)
	uc := rc.user
	if uc == nil {
		uc = rc.lastUser
	}
	v := map[string]any{
		"api":                 rec.API,
		"displayName":         rec.displayName(view["name"].(string)),
		"visibleAt":           rc.mgmtVisibleAtLocked().UTC(),
		"driver":              rec.Driver,
		"nodeCount":           rec.NodeCount,
		"podCount":            rc.podCount,
		"capacity":            rec.Capacity,
		"agentImage":          rec.AgentImage,
		"agentFeatures":       rec.AgentFeatures,
		"systemUserId":        rec.SystemUserID,
		"projects":            map[string]string{"default": rec.DefaultProject, "system": rec.SystemProject},
		"mainConnects":        rc.stats.mainConnects,
		"versionChecks":       rc.stats.versionChecks,
		"versionErrors":       rc.stats.versionErrors,
		"versionChanges":      rc.stats.versionChanges,
		"lastVersionError":    rc.stats.lastVersionErr,
		"timeline":            append([]rancherTransition{}, rc.timeline...),
		"deploy":              rc.deploy,
		"downstreamImage":     rc.imageCached,
		"downstreamImageRead": rc.imageCacheOK,
	}
	view["state"] = sum.State
	view["transitioning"] = sum.transitioning()
	view["transitioningMessage"] = sum.message()
	view["conditions"] = conds
	view["version"] = rec.Version
	rc.mu.Unlock()
	if uc != nil {
		cv := uc.view()
		v["controllers"] = cv
		view["probe"] = cv["probe"]
		view["informers"] = cv["informers"]
	} else {
		v["controllers"] = nil
		view["probe"] = nil
		view["informers"] = nil
	}
	view["rancher"] = v
}

// kubeSuiteRequest tunes a suite run from the control API.
type kubeSuiteRequest struct {
	RunID                  string   `json:"runId"`
	Only                   []string `json:"only"`
	Skip                   []string `json:"skip"`
	SyncTimeoutSeconds     float64  `json:"syncTimeoutSeconds"`
	NamespaceTimeoutSecond float64  `json:"namespaceTimeoutSeconds"`
	TimeoutSeconds         float64  `json:"timeoutSeconds"`
}

// handleKubeSuite runs the client-go suite through the main tunnel with
// Rancher's REST config (TLS verified against the announced CA).
func (r *rancherServer) handleKubeSuite(w http.ResponseWriter, req *http.Request) {
	var body kubeSuiteRequest
	if err := readBody(req, &body); err != nil {
		writeControlError(w, err)
		return
	}
	rc := r.cluster(req.PathValue("id"))
	if rc == nil {
		writeControlError(w, errUnknownCluster)
		return
	}
	cfg, err := rc.restConfig(true)
	if err != nil {
		writeControlError(w, err)
		return
	}
	timeout := 10 * time.Minute
	if body.TimeoutSeconds > 0 {
		timeout = time.Duration(body.TimeoutSeconds * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	res := runKubeSuite(ctx, cfg, KubeSuiteOptions{
		RunID:                  body.RunID,
		Only:                   body.Only,
		Skip:                   body.Skip,
		SyncTimeout:            time.Duration(body.SyncTimeoutSeconds * float64(time.Second)),
		NamespaceDeleteTimeout: time.Duration(body.NamespaceTimeoutSecond * float64(time.Second)),
	})
	writeJSON(w, http.StatusOK, res)
}

// kubectlRequest is one kubectl run from the control API.
type kubectlRequest struct {
	Args           []string `json:"args"`
	Stdin          string   `json:"stdin"`
	Impersonate    bool     `json:"impersonate"`
	TimeoutSeconds float64  `json:"timeoutSeconds"`
}

// handleKubectl runs in-process kubectl through the main tunnel: with the
// announced token, or (impersonate) the way Rancher's proxy forwards: the
// impersonation account's token and Impersonate-* headers for the
// cluster's system user.
func (r *rancherServer) handleKubectl(w http.ResponseWriter, req *http.Request) {
	var body kubectlRequest
	if err := readBody(req, &body); err != nil {
		writeControlError(w, err)
		return
	}
	if len(body.Args) == 0 {
		writeControlError(w, badRequestError{errors.New("args is required")})
		return
	}
	rc := r.cluster(req.PathValue("id"))
	if rc == nil {
		writeControlError(w, errUnknownCluster)
		return
	}
	p := rc.params()
	if p == nil {
		writeControlError(w, errors.New("the cluster's main tunnel never connected (no params)"))
		return
	}
	timeout := 2 * time.Minute
	if body.TimeoutSeconds > 0 {
		timeout = time.Duration(body.TimeoutSeconds * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	uc := rc.userControllers()
	token := p.Token
	var user *rancherUser
	var imp impersonationStatus
	if body.Impersonate {
		if uc == nil || !uc.synced() {
			writeControlError(w, errors.New("impersonation needs the cluster's controllers running (informers synced)"))
			return
		}
		u := rc.systemUser("token-" + randomString(5))
		t, err := uc.impersonationToken(ctx, u, &imp)
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "impersonation": imp})
			return
		}
		token, user = t, &u
	}
	fake := &rancherUserControllers{params: *p}
	if uc != nil {
		fake = uc
	}
	target, err := rc.kubectlTarget(fake, token, user)
	if err != nil {
		writeControlError(w, err)
		return
	}
	res, err := runKubectlStdin(ctx, target, body.Stdin, body.Args...)
	if err != nil {
		writeControlError(w, err)
		return
	}
	out := map[string]any{
		"args": res.Args, "exitCode": res.ExitCode, "stdout": res.Stdout, "stderr": res.Stderr,
		"durationMs": res.Duration.Milliseconds(), "requests": res.Requests,
	}
	if body.Impersonate {
		out["impersonation"] = imp
		out["impersonateUser"] = user.UID
	}
	writeJSON(w, http.StatusOK, out)
}

// runKubectlStdin is runKubectl with a stdin: it goes into a file that
// replaces the "-" of -f/--filename.
func runKubectlStdin(ctx context.Context, target KubectlTarget, stdin string, args ...string) (KubectlResult, error) {
	if stdin == "" {
		return runKubectl(ctx, target, args...)
	}
	dir, err := os.MkdirTemp("", "standin-stdin-")
	if err != nil {
		return KubectlResult{}, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "stdin.yaml")
	if err := os.WriteFile(file, []byte(stdin), 0o600); err != nil {
		return KubectlResult{}, err
	}
	out := slices.Clone(args)
	replaced := false
	for i, a := range out {
		switch {
		case a == "-" && i > 0 && (out[i-1] == "-f" || out[i-1] == "--filename"):
			out[i], replaced = file, true
		case a == "-f=-" || a == "--filename=-":
			out[i], replaced = strings.TrimSuffix(a, "-")+file, true
		}
	}
	if !replaced {
		return KubectlResult{}, badRequestError{errors.New(`stdin needs "-f -" in args`)}
	}
	res, err := runKubectl(ctx, target, out...)
	res.Args = args
	return res, err
}

// handleAgentManifest shows the manifest of the last agent deploy.
func (r *rancherServer) handleAgentManifest(w http.ResponseWriter, req *http.Request) {
	rc := r.cluster(req.PathValue("id"))
	if rc == nil {
		writeControlError(w, errUnknownCluster)
		return
	}
	rc.mu.Lock()
	m := rc.deploy.Manifest
	rc.mu.Unlock()
	if m == "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no agent deploy yet"})
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write([]byte(m))
}
