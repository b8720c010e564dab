package main

// clusterdeploy (rancher-server-side §9.1): once the cluster is
// provisioned, its API answers and it has at least one node, Rancher
// creates the system account, renders the agent manifest with the `system`
// registration token and CATTLE_FEATURES, and `kubectl apply`s it through
// its own /k8s/clusters/<id> proxy (impersonating the system user), 5 tries
// 5 s apart. AgentDeployed records the outcome; the agent Deployment's
// image is read back and a mismatch triggers another deploy.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	applyAttempts  = 5
	maxApplyOutput = 16 << 10
	maxApplyLog    = 20
	systemCRT      = "system"
)

// applyRecord is one kubectl run of a deploy.
type applyRecord struct {
	At         time.Time `json:"at"`
	Deploy     int       `json:"deploy"`
	Attempt    int       `json:"attempt"`
	Command    string    `json:"command"`
	ExitCode   int       `json:"exitCode"`
	DurationMs int64     `json:"durationMs"`
	Stdout     string    `json:"stdout,omitempty"`
	Stderr     string    `json:"stderr,omitempty"`
	Error      string    `json:"error,omitempty"`
	Requests   []string  `json:"requests,omitempty"`
}

// deployStatus is what clusterdeploy did for a cluster.
type deployStatus struct {
	Syncs         int                 `json:"syncs"`
	Deploys       int                 `json:"deploys"`
	Succeeded     int                 `json:"succeeded"`
	Failed        int                 `json:"failed"`
	Attempts      int                 `json:"attempts"`
	LastSkip      string              `json:"lastSkip,omitempty"`
	LastError     string              `json:"lastError,omitempty"`
	LastReason    string              `json:"lastReason,omitempty"`
	DeployedAt    time.Time           `json:"deployedAt,omitzero"`
	NextRetryAt   time.Time           `json:"nextRetryAt,omitzero"`
	AgentImage    string              `json:"agentImage"`
	ImageReadAt   time.Time           `json:"imageReadAt,omitzero"`
	Manifest      string              `json:"-"`
	Applies       []applyRecord       `json:"applies"`
	Impersonation impersonationStatus `json:"impersonation"`
	backoff       time.Duration
}

func (rc *rancherCluster) deployLoop() {
	for {
		rc.mu.Lock()
		next := rc.deploy.NextRetryAt
		rc.mu.Unlock()
		var retry <-chan time.Time
		var timer *time.Timer
		if !next.IsZero() {
			timer = time.NewTimer(max(time.Until(next), 0))
			retry = timer.C
		}
		select {
		case <-rc.ctx.Done():
		case <-rc.deployKick:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
		if rc.ctx.Err() != nil {
			return
		}
		rc.clusterDeploySync()
	}
}

func (rc *rancherCluster) deploySkip(why string) {
	rc.mu.Lock()
	rc.deploy.LastSkip = why
	rc.mu.Unlock()
}

// clusterDeploySync is clusterdeploy's doSync + deployAgent.
func (rc *rancherCluster) clusterDeploySync() {
	if !rc.downstream() {
		return
	}
	rc.mu.Lock()
	rc.deploy.Syncs++
	wait := time.Until(rc.deploy.NextRetryAt)
	rc.mu.Unlock()
	rec := rc.snapshot()
	if !rec.Conditions.isTrue(condProvisioned) {
		rc.deploySkip("cluster not provisioned")
		return
	}
	uc := rc.userControllers()
	if uc == nil || !uc.synced() {
		// The proxy's impersonation needs the cluster's caches.
		rc.deploySkip("cluster controllers not running yet")
		return
	}
	// IsAPIUp through a user context that does not wait for the agent.
	direct, err := rc.directClient()
	if err != nil {
		rc.deploySkip(err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(rc.ctx, 5*time.Second)
	_, err = direct.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	cancel()
	if err != nil && !apierrors.IsNotFound(err) {
		rc.deploySkip("cannot connect to the cluster's API: " + err.Error())
		return
	}
	if rec.NodeCount == 0 {
		rc.deploySkip("no nodes: Rancher deploys no agent to a cluster without nodes")
		return
	}
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		if rec.Conditions.isTrue(condSystemAccountCreated) {
			return false
		}
		return rec.Conditions.set(now, condSystemAccountCreated, statusTrue, "", "")
	})
	rc.mu.Lock()
	cached := rc.imageCacheOK
	rc.mu.Unlock()
	if rec.AgentImage != "" && !cached {
		if err := rc.cacheAgentImage(uc); err != nil {
			rc.deploySkip("reading the agent image: " + err.Error())
			return
		}
	}
	token, err := rc.systemToken()
	if err != nil {
		rc.deploySkip(err.Error())
		return
	}
	reason := rc.redeployReason(rec, token)
	if reason == "" {
		rc.deploySkip("agent up to date")
		return
	}
	if wait > 0 {
		rc.deploySkip(fmt.Sprintf("waiting %s before retrying a failed deploy", wait.Round(time.Second)))
		return
	}
	if !benchAgentDeploy {
		// --agent-deploy=false (bench_options.go)
		rc.deploySkip("agent deploy disabled: " + reason)
		return
	}
	rc.deployAgent(uc, token, reason)
}

// redeployReason says why the agent must be (re)deployed, "" if not.
func (rc *rancherCluster) redeployReason(rec mgmtRecord, token string) string {
	v := rc.opts().version
	rc.mu.Lock()
	cached, cachedImage := rc.imageCacheOK, rc.imageCached
	rc.mu.Unlock()
	switch {
	case !rec.Conditions.isTrue(condAgentDeployed):
		return "AgentDeployed is not True"
	case rec.AgentImage != agentImage(v):
		return "agent image changed"
	case !reflect.DeepEqual(rec.AgentFeatures, desiredAgentFeatures(v)):
		return "agent features changed"
	case rec.TokenHash != tokenHash(token):
		return "registration token hash changed"
	case !rec.AppliedAgentEnvVars:
		return "agent env vars changed"
	case cached && cachedImage != rec.AgentImage:
		return fmt.Sprintf("downstream agent image %q differs from %q", cachedImage, rec.AgentImage)
	}
	return ""
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])[:10]
}

// directClient is a client whose dials fail at once without a tunnel
// (retryOnError=false), as clusterdeploy and the stats aggregator use. It
// is kept while the tunnel params stay the same.
func (rc *rancherCluster) directClient() (kubernetes.Interface, error) {
	p := rc.params()
	if p == nil {
		return nil, errors.New("waiting for the cluster agent: no tunnel params yet")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.direct != nil && rc.directParams == *p {
		return rc.direct, nil
	}
	cfg, err := rancherRESTConfig(rc.id, *p, rc.clusterDialer(false))
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.direct, rc.directParams = client, *p
	return client, nil
}

// systemToken returns the value of the `system` registration token,
// creating it (GetOrCreateSystemClusterToken).
func (rc *rancherCluster) systemToken() (string, error) {
	c, ok := rc.srv.s.Cluster(rc.id)
	if !ok {
		return "", errUnknownCluster
	}
	for _, t := range c.Tokens {
		if t.Name == systemCRT {
			return t.Token, nil
		}
	}
	token, err := rc.srv.s.AddToken(rc.id, systemCRT, "")
	if err != nil {
		return "", err
	}
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		rec.token(systemCRT, now)
		return true
	})
	return token, nil
}

// cacheAgentImage reads Deployment cattle-system/cattle-cluster-agent's
// cluster-register image (and on 2.11 the cattle-node-agent DaemonSet's).
func (rc *rancherCluster) cacheAgentImage(uc *rancherUserControllers) error {
	ctx, cancel := context.WithTimeout(rc.ctx, 45*time.Second)
	defer cancel()
	if rc.opts().version == rancher211 {
		_, err := uc.ctrl.AppsV1().DaemonSets("cattle-system").Get(ctx, "cattle-node-agent", metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	image := ""
	d, err := uc.ctrl.AppsV1().Deployments("cattle-system").Get(ctx, "cattle-cluster-agent", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	default:
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "cluster-register" {
				image = c.Image
			}
		}
	}
	rc.mu.Lock()
	rc.imageCached, rc.imageCacheOK = image, true
	rc.deploy.AgentImage = image
	rc.deploy.ImageReadAt = time.Now().UTC()
	rc.mu.Unlock()
	return nil
}

// deployAgent is AgentDeployed.Do(apply): render, kubectl apply up to 5
// times, then record the outcome.
func (rc *rancherCluster) deployAgent(uc *rancherUserControllers, token, reason string) {
	v := rc.opts().version
	rc.mu.Lock()
	rc.deploy.Deploys++
	n := rc.deploy.Deploys
	rc.deploy.LastReason = reason
	rc.deploy.LastSkip = ""
	rc.mu.Unlock()
	slog.Info("rancher: deploying the cluster agent", "cluster", rc.id, "reason", reason)
	manifest, err := renderAgentManifest(agentManifestInput{
		Version: v, ServerURL: rc.srv.serverURL(), Token: token, Namespace: rc.id,
		Features: desiredAgentFeatures(v), CAChecksum: rc.srv.s.CAChecksum(),
		InstallUUID: rc.srv.installUUID(), Taints: rc.controlPlaneTaints(uc),
	})
	var output string
	if err == nil {
		for attempt := 1; attempt <= applyAttempts; attempt++ {
			output, err = rc.applyOnce(uc, manifest, n, attempt)
			if err == nil || rc.ctx.Err() != nil {
				break
			}
			if !rc.sleepFor(rc.opts().applyRetryDelay) {
				return
			}
		}
	}
	if rc.ctx.Err() != nil {
		return
	}
	if err != nil {
		msg := prefixAgentApplyFailed + err.Error()
		if output != "" {
			msg += ", " + formatApplyOutput(output)
		}
		rc.mu.Lock()
		rc.deploy.Failed++
		rc.deploy.LastError = msg
		rc.deploy.backoff = min(max(2*rc.deploy.backoff, rc.opts().deployBackoff), 5*time.Minute)
		rc.deploy.NextRetryAt = time.Now().Add(rc.deploy.backoff)
		rc.deploy.Manifest = manifest
		rc.mu.Unlock()
		rc.update(func(rec *mgmtRecord, now time.Time) bool {
			return rec.Conditions.set(now, condAgentDeployed, statusFalse, reasonError, msg)
		})
		return
	}
	if v == rancher211 {
		// 2.11 also removes a node agent DaemonSet (absent on imports).
		rc.kubectlDelete(uc, n)
	}
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		return rec.Conditions.set(now, condAgentDeployed, statusTrue, "", "")
	})
	if err := rc.cacheAgentImage(uc); err != nil {
		rc.mu.Lock()
		rc.imageCacheOK = false
		rc.deploy.LastError = "reading back the agent image: " + err.Error()
		rc.mu.Unlock()
	}
	rc.mu.Lock()
	rc.deploy.Succeeded++
	rc.deploy.DeployedAt = time.Now().UTC()
	rc.deploy.NextRetryAt = time.Time{}
	rc.deploy.backoff = 0
	rc.deploy.LastError = ""
	rc.deploy.Manifest = manifest
	rc.mu.Unlock()
	rc.update(func(rec *mgmtRecord, now time.Time) bool {
		rec.AgentImage = agentImage(v)
		rec.AgentFeatures = desiredAgentFeatures(v)
		rec.AppliedAgentEnvVars = true
		rec.TokenHash = tokenHash(token)
		if rec.Annotations == nil {
			rec.Annotations = map[string]string{}
		}
		rec.Annotations["io.cattle.agent.registration-token-hash"] = rec.TokenHash
		return true
	})
}

func formatApplyOutput(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "error") || strings.Contains(l, "Error") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		keep = lines
	}
	return strings.Join(keep, "; ")
}

// controlPlaneTaints are the taints of control-plane nodes, which the agent
// must tolerate (none: Rancher's defaults).
func (rc *rancherCluster) controlPlaneTaints(uc *rancherUserControllers) []agentToleration {
	seen := map[string]bool{}
	var out []agentToleration
	for _, obj := range uc.informers.store("nodes").List() {
		n, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
		if !cp && n.Labels["node-role.kubernetes.io/controlplane"] != "true" {
			continue
		}
		for _, t := range n.Spec.Taints {
			key := t.Key + "=" + t.Value + ":" + string(t.Effect)
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, agentToleration{Key: t.Key, Value: t.Value, Effect: string(t.Effect)})
		}
	}
	return out
}

// kubectlTarget is how Rancher's kubectl reaches the cluster: through its
// proxy, which dials the main tunnel, verifies the announced CA and
// forwards with the impersonation account's token and Impersonate-*
// headers.
func (rc *rancherCluster) kubectlTarget(uc *rancherUserControllers, token string, u *rancherUser) (KubectlTarget, error) {
	p := uc.params
	ca, err := base64.StdEncoding.DecodeString(p.CACert)
	if err != nil {
		return KubectlTarget{}, err
	}
	host, _, err := net.SplitHostPort(p.Address)
	if err != nil {
		return KubectlTarget{}, err
	}
	dial := rc.clusterDialer(true)
	t := KubectlTarget{
		Server:        "https://" + p.Address,
		Dial:          func(ctx context.Context) (net.Conn, error) { return dial(ctx, "tcp", p.Address) },
		TLSServerName: host,
		CAData:        ca,
		Token:         token,
	}
	if u != nil {
		t.ImpersonateUser = u.UID
		t.ImpersonateGroups = u.Groups
		t.ImpersonateExtra = u.Extra
	}
	return t, nil
}

// applyOnce is one `kubectl apply -f` through the proxy.
func (rc *rancherCluster) applyOnce(uc *rancherUserControllers, manifest string, deploy, attempt int) (string, error) {
	rec := applyRecord{At: time.Now().UTC(), Deploy: deploy, Attempt: attempt, Command: "kubectl apply -f <agent manifest>", ExitCode: -1}
	defer func() { rc.noteApply(rec) }()
	start := time.Now()
	user := rc.systemUser("token-" + randomString(5))
	var st impersonationStatus
	token, err := uc.impersonationToken(rc.ctx, user, &st)
	rc.mu.Lock()
	rc.deploy.Attempts++
	rc.deploy.Impersonation = st
	rc.mu.Unlock()
	if err != nil {
		rec.Error = err.Error()
		rec.DurationMs = time.Since(start).Milliseconds()
		return "", err
	}
	target, err := rc.kubectlTarget(uc, token, &user)
	if err != nil {
		rec.Error = err.Error()
		return "", err
	}
	dir, err := os.MkdirTemp("", "standin-agent-")
	if err != nil {
		rec.Error = err.Error()
		return "", err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		rec.Error = err.Error()
		return "", err
	}
	res, err := kubectlApply(rc.ctx, target, file)
	rec.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		rec.Error = err.Error()
		return "", err
	}
	rec.ExitCode, rec.Requests = res.ExitCode, res.Requests
	rec.Stdout, rec.Stderr = truncate(res.Stdout, maxApplyOutput), truncate(res.Stderr, maxApplyOutput)
	if err := res.Err(); err != nil {
		rec.Error = err.Error()
		return res.Stdout + res.Stderr, fmt.Errorf("exit status %d", res.ExitCode)
	}
	return res.Stdout, nil
}

// kubectlDelete is 2.11's `kubectl delete -f` of the node agent DaemonSet;
// "not found" is expected.
func (rc *rancherCluster) kubectlDelete(uc *rancherUserControllers, deploy int) {
	rec := applyRecord{At: time.Now().UTC(), Deploy: deploy, Command: "kubectl delete -f <cattle-node-agent DaemonSet>", ExitCode: -1}
	defer func() { rc.noteApply(rec) }()
	user := rc.systemUser("token-" + randomString(5))
	var st impersonationStatus
	token, err := uc.impersonationToken(rc.ctx, user, &st)
	if err != nil {
		rec.Error = err.Error()
		return
	}
	target, err := rc.kubectlTarget(uc, token, &user)
	if err != nil {
		rec.Error = err.Error()
		return
	}
	dir, err := os.MkdirTemp("", "standin-agent-")
	if err != nil {
		rec.Error = err.Error()
		return
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "node-agent.yaml")
	ds := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n    name: cattle-node-agent\n    namespace: cattle-system\n"
	if err := os.WriteFile(file, []byte(ds), 0o600); err != nil {
		rec.Error = err.Error()
		return
	}
	start := time.Now()
	res, err := runKubectl(rc.ctx, target, "delete", "-f", file)
	rec.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		rec.Error = err.Error()
		return
	}
	rec.ExitCode, rec.Requests = res.ExitCode, res.Requests
	rec.Stdout, rec.Stderr = truncate(res.Stdout, maxApplyOutput), truncate(res.Stderr, maxApplyOutput)
}

func (rc *rancherCluster) noteApply(rec applyRecord) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.deploy.Applies = append(rc.deploy.Applies, rec)
	if len(rc.deploy.Applies) > maxApplyLog {
		rc.deploy.Applies = rc.deploy.Applies[len(rc.deploy.Applies)-maxApplyLog:]
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}
