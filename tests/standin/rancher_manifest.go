package main

// The agent manifest Rancher renders (agent-protocol §1.5, §1.6): the
// bootstrap manifest served at the import URL and the one clusterdeploy
// applies through the tunnel later (the `system` token, namespace = cluster
// id, CATTLE_FEATURES). The text follows the manifests recorded from
// Rancher 2.11.16 and 2.14.4 (tests/fixtures/rancher/).

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"text/template"
)

// agentManifestInput is what a rendering needs.
type agentManifestInput struct {
	Version     rancherVersion
	ServerURL   string
	Token       string
	Namespace   string          // "" in the bootstrap manifest, the cluster id when redeployed
	Features    map[string]bool // nil in the bootstrap manifest
	CAChecksum  string
	InstallUUID string
	// Taints of the control-plane nodes; none means Rancher's defaults.
	Taints []agentToleration
}

// agentToleration is one rendered toleration.
type agentToleration struct {
	Key, Value, Effect string
}

// agentCredentialName is cattle-credentials-<first 10 hex digits of
// sha256("<url>.<token>.<namespace>")>.
func agentCredentialName(url, token, namespace string) string {
	d := sha256.Sum256([]byte(url + "." + token + "." + namespace))
	return "cattle-credentials-" + hex.EncodeToString(d[:])[:10]
}

// agentImage is the agent image of the emulated release.
func agentImage(v rancherVersion) string { return "rancher/rancher-agent:" + v.serverVersion() }

// desiredAgentFeatures is what clusterdeploy puts into CATTLE_FEATURES for
// an imported cluster, per release (as recorded).
func desiredAgentFeatures(v rancherVersion) map[string]bool {
	if v == rancher211 {
		return map[string]bool{
			"embedded-cluster-api": false, "fleet": false, "managed-system-upgrade-controller": false,
			"multi-cluster-management": false, "multi-cluster-management-agent": true,
			"provisioningprebootstrap": false, "provisioningv2": false, "rke2": false, "ui-sql-cache": false,
		}
	}
	return map[string]bool{
		"fleet": false, "managed-system-upgrade-controller": false,
		"multi-cluster-management": false, "multi-cluster-management-agent": true,
		"provisioningprebootstrap": false, "provisioningv2": false, "rke2": false,
		"turtles": false, "ui-sql-cache": true,
	}
}

// agentFeatureString is "a=true,b=false", sorted by name.
func agentFeatureString(features map[string]bool) string {
	keys := make([]string, 0, len(features))
	for k := range features {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%t", k, features[k]))
	}
	return strings.Join(parts, ",")
}

// renderAgentManifest renders the manifest.
func renderAgentManifest(in agentManifestInput) (string, error) {
	credential := agentCredentialName(in.ServerURL, in.Token, in.Namespace)
	data := map[string]any{
		"Old":         in.Version == rancher211,
		"Credential":  credential,
		"URL":         base64.StdEncoding.EncodeToString([]byte(in.ServerURL)),
		"URLPlain":    in.ServerURL,
		"Token":       base64.StdEncoding.EncodeToString([]byte(in.Token)),
		"Namespace":   base64.StdEncoding.EncodeToString([]byte(in.Namespace)),
		"Features":    agentFeatureString(in.Features),
		"CAChecksum":  in.CAChecksum,
		"InstallUUID": in.InstallUUID,
		"Version":     in.Version.serverVersion(),
		"Image":       agentImage(in.Version),
		"Taints":      in.Taints,
	}
	var b strings.Builder
	if err := agentManifestTemplate.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

var agentManifestTemplate = template.Must(template.New("agent").Parse(agentManifestText))

const agentManifestText = `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: proxy-clusterrole-kubeapiserver
rules:
- apiGroups: [""]
  resources:
  - nodes/metrics
  - nodes/proxy
  - nodes/stats
  - nodes/log
  - nodes/spec
  verbs: ["get", "list", "watch", "create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: proxy-role-binding-kubernetes-master
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: proxy-clusterrole-kubeapiserver
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver
---
apiVersion: v1
kind: Namespace
metadata:
  name: cattle-system
{{- if .Old}}
{{end}}
---

apiVersion: v1
kind: ServiceAccount
metadata:
  name: cattle
  namespace: cattle-system

---

apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cattle-admin-binding
  namespace: cattle-system
  labels:
    cattle.io/creator: "norman"
subjects:
- kind: ServiceAccount
  name: cattle
  namespace: cattle-system
roleRef:
  kind: ClusterRole
  name: cattle-admin
  apiGroup: rbac.authorization.k8s.io

---

apiVersion: v1
kind: Secret
metadata:
  name: {{.Credential}}
  namespace: cattle-system
type: Opaque
data:
  url: "{{.URL}}"
  token: "{{.Token}}"
  namespace: "{{.Namespace}}"

---

apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cattle-admin
  labels:
    cattle.io/creator: "norman"
rules:
- apiGroups:
  - '*'
  resources:
  - '*'
  verbs:
  - '*'
- nonResourceURLs:
  - '*'
  verbs:
  - '*'

---

apiVersion: apps/v1
kind: Deployment
metadata:
  name: cattle-cluster-agent
  namespace: cattle-system
  annotations:
    management.cattle.io/scale-available: "2"
spec:
  selector:
    matchLabels:
      app: cattle-cluster-agent
  template:
    metadata:
      labels:
        app: cattle-cluster-agent
    spec:
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - preference:
              matchExpressions:
              - key: node-role.kubernetes.io/controlplane
                operator: In
                values:
                - "true"
            weight: 100
          - preference:
              matchExpressions:
              - key: node-role.kubernetes.io/control-plane
                operator: In
                values:
                - "true"
            weight: 100
{{- if .Old}}
          - preference:
              matchExpressions:
              - key: node-role.kubernetes.io/master
                operator: In
                values:
                - "true"
            weight: 100
{{- end}}
          - preference:
              matchExpressions:
              - key: cattle.io/cluster-agent
                operator: In
                values:
                - "true"
            weight: 1
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - key: {{if .Old}}beta.kubernetes.io/os{{else}}kubernetes.io/os{{end}}
                operator: NotIn
                values:
                - windows
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - podAffinityTerm:
              labelSelector:
                matchExpressions:
                - key: app
                  operator: In
                  values:
                  - cattle-cluster-agent
              topologyKey: kubernetes.io/hostname
            weight: 100
      serviceAccountName: cattle
      tolerations:
{{- if .Taints}}
{{- range .Taints}}
      - effect: {{.Effect}}
        key: "{{.Key}}"
{{- if .Value}}
        operator: "Equal"
        value: "{{.Value}}"
{{- else}}
        operator: "Exists"
{{- end}}
{{- end}}
{{- else}}
      # No taints or no controlplane nodes found, added defaults
      - effect: NoSchedule
        key: node-role.kubernetes.io/controlplane
        value: "true"
      - effect: NoSchedule
        key: "node-role.kubernetes.io/control-plane"
        operator: "Exists"
{{- if .Old}}
      - effect: NoSchedule
        key: "node-role.kubernetes.io/master"
        operator: "Exists"
{{- end}}
{{- end}}
      containers:
        - name: cluster-register
          imagePullPolicy: IfNotPresent
          env:
{{- if .Features}}
          - name: CATTLE_FEATURES
            value: "{{.Features}}"
{{- end}}
{{- if .Old}}
          - name: CATTLE_IS_RKE
            value: "false"
{{- end}}
          - name: CATTLE_SERVER
            value: "{{.URLPlain}}"
          - name: CATTLE_CA_CHECKSUM
            value: "{{.CAChecksum}}"
          - name: CATTLE_CLUSTER
            value: "true"
          - name: CATTLE_K8S_MANAGED
            value: "true"
          - name: CATTLE_CLUSTER_REGISTRY
            value: ""
          - name: CATTLE_CREDENTIAL_NAME
            value: {{.Credential}}
{{- if not .Old}}
          - name: CATTLE_SUC_APP_NAME_OVERRIDE
            value: ""
{{- end}}
          - name: CATTLE_SERVER_VERSION
            value: {{.Version}}
          - name: CATTLE_INSTALL_UUID
            value: {{.InstallUUID}}
          - name: CATTLE_INGRESS_IP_DOMAIN
            value: sslip.io
          - name: STRICT_VERIFY
            value: "true"
          image: "{{.Image}}"
          volumeMounts:
          - name: cattle-credentials
            mountPath: /cattle-credentials
            readOnly: true
      volumes:
      - name: cattle-credentials
        secret:
          secretName: {{.Credential}}
          defaultMode: 320
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
{{- if .Old}}
{{end}}
---
apiVersion: v1
kind: Service
metadata:
  name: cattle-cluster-agent
  namespace: cattle-system
spec:
  ports:
  - port: 80
    targetPort: 80
    protocol: TCP
    name: http
  - port: 443
    targetPort: 444
    protocol: TCP
    name: https-internal
  selector:
    app: cattle-cluster-agent
`
