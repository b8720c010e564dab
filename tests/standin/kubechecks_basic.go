package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	cliresource "k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
)

// checks lists every check in the order they run.
func (s *kubeSuite) checks() []kubeCheckDef {
	defs := []kubeCheckDef{
		{"setup/namespace", kubeLevelRancher, s.checkSetup},
		{"basic/version", kubeLevelRancher, s.checkVersion},
		{"basic/readyz", kubeLevelRancher, s.checkHealth("/readyz?timeout=45s")},
		{"basic/healthz", kubeLevelStrict, s.checkHealth("/healthz")},
		{"basic/livez", kubeLevelStrict, s.checkHealth("/livez")},
		{"basic/kube-system", kubeLevelRancher, s.checkKubeSystem},
		{"discovery/legacy", kubeLevelRancher, s.checkDiscoveryLegacy},
		{"discovery/aggregated", kubeLevelStrict, s.checkDiscoveryAggregated},
		{"discovery/client", kubeLevelRancher, s.checkDiscoveryClient},
		{"discovery/openapi-v3", kubeLevelRancher, s.checkOpenAPIV3},
		{"discovery/openapi-v2", kubeLevelStrict, s.checkOpenAPIV2},
	}
	defs = append(defs, s.errorChecks()...)
	defs = append(defs, s.crudChecks()...)
	defs = append(defs, s.watchChecks()...)
	defs = append(defs, s.tableChecks()...)
	defs = append(defs, s.informerChecks()...)
	defs = append(defs, s.impersonationChecks()...)
	defs = append(defs, s.crdChecks()...)
	defs = append(defs, kubeCheckDef{"crud/namespace-deleted", kubeLevelRancher, s.checkNamespaceDeleted})
	return defs
}

// kubeRunLabel marks every labelled object of a run.
const kubeRunLabel = "scaleagent.test/run"

// checkSetup creates the run's namespaces and Node, and makes sure the
// namespaces Rancher works in exist (they are created when missing and left
// in place).
func (s *kubeSuite) checkSetup(c *kubeCheck) error {
	ctx := c.ctx
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns, Labels: map[string]string{kubeRunLabel: s.run}}}
	created, err := s.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", s.ns, err)
	}
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.CoreV1().Namespaces().Delete(ctx, s.ns, metav1.DeleteOptions{})
	})
	c.record("create namespace", created)
	c.expect(created.Status.Phase == corev1.NamespaceActive, "new namespace phase %q, want Active", created.Status.Phase)
	c.expect(len(created.Spec.Finalizers) == 1 && created.Spec.Finalizers[0] == corev1.FinalizerKubernetes,
		"new namespace spec.finalizers %v, want [kubernetes]", created.Spec.Finalizers)
	c.expect(created.Labels[corev1.LabelMetadataName] == s.ns, "new namespace lacks label %s", corev1.LabelMetadataName)

	second := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.name("b"), Labels: map[string]string{kubeRunLabel: s.run}}}
	if _, err := s.cs.CoreV1().Namespaces().Create(ctx, second, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", second.Name, err)
	}
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.CoreV1().Namespaces().Delete(ctx, second.Name, metav1.DeleteOptions{})
	})

	for _, name := range []string{"cattle-system", "cattle-impersonation-system"} {
		_, err := s.cs.CoreV1().Namespaces().Create(c.quiet(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ensure namespace %s: %w", name, err)
		}
	}

	node := s.newNode(s.name("node"))
	createdNode, err := s.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node: %w", err)
	}
	s.nodeName = createdNode.Name
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{})
	})
	// (whether the create kept the status, as a real server does for a
	// kubelet's registration, is checked by crud/status-subresource)
	c.record("create node", kubePick(createdNode, "metadata", "spec", "status"))
	return nil
}

// newNode is a Node as a kubelet would register it (no kubelet heartbeats
// follow; a real kube-controller-manager marks it NotReady after ~50s).
func (s *kubeSuite) newNode(name string) *corev1.Node {
	now := metav1.Now()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				kubeRunLabel:                            s.run,
				"kubernetes.io/os":                      "linux",
				"kubernetes.io/arch":                    "amd64",
				"kubernetes.io/hostname":                name,
				"node-role.kubernetes.io/worker":        "true",
				"beta.kubernetes.io/os":                 "linux",
				"node-role.kubernetes.io/control-plane": "true",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: "10.42.7.0/24", PodCIDRs: []string{"10.42.7.0/24"}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("4"),
				corev1.ResourceMemory: resource.MustParse("8Gi"),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("4"),
				corev1.ResourceMemory: resource.MustParse("8Gi"),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "10.0.7.1"},
				{Type: corev1.NodeHostName, Address: name},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion: "v1.35.4", KubeProxyVersion: "v1.35.4", OperatingSystem: "linux", Architecture: "amd64",
				OSImage: "Ubuntu 24.04 LTS", KernelVersion: "6.8.0", ContainerRuntimeVersion: "containerd://2.0.0",
			},
		},
	}
}

var kubeReSemver = regexp.MustCompile(`^v\d+\.\d+\.\d+`)

// foreign reports whether a discovery entry belongs to another run of the
// suite (a CRD group still being removed), which transcripts leave out.
func (s *kubeSuite) foreign(name string) bool {
	return strings.Contains(name, ".scaleagent.test") && !strings.Contains(name, s.prefix+".")
}

func (s *kubeSuite) checkVersion(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "GET", "/version?timeout=15s", map[string]string{"Accept": "application/json, */*"}, nil)
	if err != nil {
		return err
	}
	c.record("GET /version", r.summary())
	if !c.expect(r.Status == 200, "status %d", r.Status) {
		return nil
	}
	c.expect(strings.HasPrefix(r.ContentType, "application/json"), "content type %q", r.ContentType)
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return fmt.Errorf("body is not JSON: %v", err)
	}
	gv, _ := v["gitVersion"].(string)
	c.expect(kubeReSemver.MatchString(gv), "gitVersion %q is not semver", gv)
	for _, bad := range []string{"+k3s", "+rke2", "-eks-", "-gke."} {
		c.expect(!strings.Contains(gv, bad), "gitVersion %q contains %q (switches Rancher's driver)", gv, bad)
	}
	for _, k := range []string{"major", "minor"} {
		val, _ := v[k].(string)
		digits := strings.TrimRight(val, "+")
		c.expect(digits != "" && strings.Trim(digits, "0123456789") == "", "%s %q is not numeric", k, val)
	}
	info, err := s.cs.Discovery().ServerVersion()
	if err != nil {
		c.failf("discovery ServerVersion: %v", err)
	} else {
		c.expect(info.GitVersion == gv, "ServerVersion %q != %q", info.GitVersion, gv)
	}
	return nil
}

func (s *kubeSuite) checkHealth(path string) func(c *kubeCheck) error {
	return func(c *kubeCheck) error {
		r, err := s.raw(c.ctx, "GET", path, map[string]string{"Accept": "application/json, */*"}, nil)
		if err != nil {
			return err
		}
		c.record("GET "+path, r.summary())
		c.expect(r.Status == 200, "status %d", r.Status)
		c.expect(strings.TrimSpace(string(r.Body)) == "ok", "body %q, want ok", kubeFirstLine(string(r.Body)))
		v, err := s.raw(c.ctx, "GET", strings.SplitN(path, "?", 2)[0]+"?verbose", nil, nil)
		if err == nil {
			c.record("GET ?verbose", map[string]any{"status": v.Status, "contentType": v.ContentType,
				"lastLine": kubeLastLine(string(v.Body))})
			c.expect(v.Status == 200, "?verbose status %d", v.Status)
		}
		return nil
	}
}

func kubeLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (s *kubeSuite) checkKubeSystem(c *kubeCheck) error {
	ns, err := s.cs.CoreV1().Namespaces().Get(c.ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("typed get: %w", err)
	}
	c.expect(ns.Status.Phase == corev1.NamespaceActive, "phase %q", ns.Status.Phase)
	// Rancher's health probe, byte for byte.
	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/kube-system?timeout=5s",
		map[string]string{"Accept": "application/vnd.kubernetes.protobuf,application/json"}, nil)
	if err != nil {
		return err
	}
	c.expect(r.Status == 200, "probe status %d", r.Status)
	c.record("probe (protobuf preferred)", map[string]any{"status": r.Status})
	r, err = s.raw(c.ctx, "GET", "/api/v1/namespaces/kube-system", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	body := r.summary()
	c.record("GET kube-system (json)", body)
	obj, _ := r.JSON().(map[string]any)
	c.expect(obj["kind"] == "Namespace" && obj["apiVersion"] == "v1", "JSON answer lacks kind/apiVersion: %v/%v", obj["kind"], obj["apiVersion"])
	return nil
}

// required resources: what Rancher's informers and writes, and kubectl
// apply of the agent, use.
var kubeRequiredResources = map[string][]string{
	"v1":                           {"namespaces", "nodes", "secrets", "serviceaccounts", "limitranges", "resourcequotas", "configmaps", "pods", "services", "serviceaccounts/token", "namespaces/status", "nodes/status"},
	"apps/v1":                      {"deployments", "daemonsets"},
	"rbac.authorization.k8s.io/v1": {"clusterroles", "clusterrolebindings", "roles", "rolebindings"},
	"apiregistration.k8s.io/v1":    {"apiservices"},
	"apiextensions.k8s.io/v1":      {"customresourcedefinitions"},
	"authentication.k8s.io/v1":     {"selfsubjectreviews"},
}

func (s *kubeSuite) checkDiscoveryLegacy(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "GET", "/api", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.record("GET /api", r.summary())
	api, _ := r.JSON().(map[string]any)
	c.expect(r.Status == 200 && api["kind"] == "APIVersions", "/api: status %d kind %v", r.Status, api["kind"])

	r, err = s.raw(c.ctx, "GET", "/apis", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	groups, _ := r.JSON().(map[string]any)
	c.expect(r.Status == 200 && groups["kind"] == "APIGroupList", "/apis: status %d kind %v", r.Status, groups["kind"])
	c.record("GET /apis", map[string]any{"status": r.Status, "contentType": r.ContentType, "kind": groups["kind"],
		"apiVersion": groups["apiVersion"], "groups": kubeGroupSummary(groups["groups"], s.foreign)})

	for _, gv := range kubeSortedKeys(kubeRequiredResources) {
		path := "/apis/" + gv
		if gv == "v1" {
			path = "/api/v1"
		}
		r, err := s.raw(c.ctx, "GET", path, kubeAcceptJSON, nil)
		if err != nil {
			return err
		}
		list, _ := r.JSON().(map[string]any)
		if !c.expect(r.Status == 200 && list["kind"] == "APIResourceList", "%s: status %d kind %v", path, r.Status, list["kind"]) {
			continue
		}
		have := map[string]bool{}
		res, _ := list["resources"].([]any)
		for _, e := range res {
			m, _ := e.(map[string]any)
			name, _ := m["name"].(string)
			have[name] = true
		}
		for _, want := range kubeRequiredResources[gv] {
			c.expect(have[want], "%s lacks %s", path, want)
		}
		c.record("GET "+path, map[string]any{"status": r.Status, "contentType": r.ContentType,
			"groupVersion": list["groupVersion"], "resources": kubeResourceSummary(res, gv)})
	}
	return nil
}

// kubeGroupSummary reduces an APIGroupList's groups to name, versions and
// preferred version, sorted by name.
func kubeGroupSummary(v any, skip func(string) bool) any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, e := range list {
		m, _ := e.(map[string]any)
		if name, _ := m["name"].(string); skip(name) {
			continue
		}
		var versions []string
		vs, _ := m["versions"].([]any)
		for _, x := range vs {
			xm, _ := x.(map[string]any)
			s, _ := xm["groupVersion"].(string)
			versions = append(versions, s)
		}
		pref, _ := m["preferredVersion"].(map[string]any)
		out = append(out, map[string]any{"name": m["name"], "versions": versions, "preferred": pref["groupVersion"]})
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]["name"]) < fmt.Sprint(out[j]["name"]) })
	return out
}

// kubeResourceSummary keeps the resources the suite cares about (all of the
// required ones, in full) and the names of the others.
func kubeResourceSummary(res []any, gv string) any {
	want := map[string]bool{}
	for _, r := range kubeRequiredResources[gv] {
		want[r] = true
	}
	var full []any
	var names []string
	for _, e := range res {
		m, _ := e.(map[string]any)
		name, _ := m["name"].(string)
		names = append(names, name)
		if want[name] {
			full = append(full, m)
		}
	}
	sort.Strings(names)
	return map[string]any{"names": names, "required": full}
}

func (s *kubeSuite) checkDiscoveryAggregated(c *kubeCheck) error {
	accept := map[string]string{"Accept": discovery.AcceptV2 + "," + discovery.AcceptV2Beta1 + "," + discovery.AcceptV1}
	for _, path := range []string{"/api", "/apis"} {
		r, err := s.raw(c.ctx, "GET", path, accept, nil)
		if err != nil {
			return err
		}
		doc, _ := r.JSON().(map[string]any)
		c.expect(r.Status == 200, "%s status %d", path, r.Status)
		c.expect(r.ContentType == discovery.AcceptV2, "%s content type %q, want %q", path, r.ContentType, discovery.AcceptV2)
		c.expect(doc["kind"] == "APIGroupDiscoveryList", "%s kind %v", path, doc["kind"])
		entry := map[string]any{"status": r.Status, "contentType": r.ContentType, "kind": doc["kind"], "apiVersion": doc["apiVersion"]}
		if vary := r.Header.Values("Vary"); len(vary) > 0 {
			entry["vary"] = vary
		}
		items, _ := doc["items"].([]any)
		var groups []any
		for _, it := range items {
			m, _ := it.(map[string]any)
			md, _ := m["metadata"].(map[string]any)
			if name, _ := md["name"].(string); s.foreign(name) {
				continue
			}
			versions, _ := m["versions"].([]any)
			var vs []any
			for _, v := range versions {
				vm, _ := v.(map[string]any)
				gv := fmt.Sprint(vm["version"])
				if g := fmt.Sprint(md["name"]); g != "" && g != "<nil>" {
					gv = g + "/" + gv
				}
				resources, _ := vm["resources"].([]any)
				detail := map[string]any{"version": vm["version"], "freshness": vm["freshness"]}
				if _, ok := kubeRequiredResources[gv]; ok {
					detail["resources"] = kubeAggregatedResources(resources, gv)
				} else {
					var names []string
					for _, r := range resources {
						rm, _ := r.(map[string]any)
						names = append(names, fmt.Sprint(rm["resource"]))
					}
					sort.Strings(names)
					detail["resourceNames"] = names
				}
				vs = append(vs, detail)
			}
			groups = append(groups, map[string]any{"name": md["name"], "versions": vs})
		}
		entry["groups"] = groups
		c.record("GET "+path+" (aggregated)", entry)
	}
	return nil
}

func kubeAggregatedResources(res []any, gv string) any {
	want := map[string]bool{}
	for _, r := range kubeRequiredResources[gv] {
		want[strings.SplitN(r, "/", 2)[0]] = true
	}
	var out []any
	for _, e := range res {
		m, _ := e.(map[string]any)
		if want[fmt.Sprint(m["resource"])] {
			out = append(out, m)
		}
	}
	return out
}

func (s *kubeSuite) checkDiscoveryClient(c *kubeCheck) error {
	check := func(label string, lists []*metav1.APIResourceList, err error) {
		if err != nil {
			c.failf("%s: %v", label, err)
		}
		have := map[string]bool{}
		var gvs []string
		for _, l := range lists {
			if s.foreign(l.GroupVersion) {
				continue
			}
			gvs = append(gvs, l.GroupVersion)
			for _, r := range l.APIResources {
				have[l.GroupVersion+" "+r.Name] = true
			}
		}
		sort.Strings(gvs)
		for gv, names := range kubeRequiredResources {
			for _, n := range names {
				if label == "ServerPreferredResources" && strings.Contains(n, "/") {
					continue // subresources are not listed there
				}
				c.expect(have[gv+" "+n], "%s lacks %s %s", label, gv, n)
			}
		}
		c.record(label, map[string]any{"groupVersions": gvs})
	}
	_, lists, err := s.cs.Discovery().ServerGroupsAndResources()
	check("ServerGroupsAndResources", lists, err)
	lists, err = s.cs.Discovery().ServerPreferredResources()
	check("ServerPreferredResources", lists, err)

	legacy, err := discovery.NewDiscoveryClientForConfigAndClient(s.cfg, s.http)
	if err != nil {
		return err
	}
	legacy.UseLegacyDiscovery = true
	_, lists, err = legacy.ServerGroupsAndResources()
	check("ServerGroupsAndResources (legacy)", lists, err)
	return nil
}

func (s *kubeSuite) checkOpenAPIV3(c *kubeCheck) error {
	paths, err := s.cs.Discovery().OpenAPIV3().Paths()
	if err != nil {
		return fmt.Errorf("GET /openapi/v3: %w", err)
	}
	var keys []string
	for _, k := range kubeSortedKeys(paths) {
		if !s.foreign(k) {
			keys = append(keys, k)
		}
	}
	c.record("GET /openapi/v3 paths", keys)
	for _, want := range []string{"api/v1", "apis/apps/v1", "apis/rbac.authorization.k8s.io/v1"} {
		c.expect(paths[want] != nil, "/openapi/v3 lacks %s", want)
	}
	if gv := paths["apis/apps/v1"]; gv != nil {
		url := gv.ServerRelativeURL()
		c.expect(strings.Contains(url, "?hash="), "apps/v1 serverRelativeURL %q lacks a hash", url)
		c.record("apps/v1 serverRelativeURL", url)
		b, err := gv.Schema("application/json")
		if err != nil {
			c.failf("GET apps/v1 document: %v", err)
		} else {
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil {
				c.failf("apps/v1 document is not JSON: %v", err)
			} else {
				c.record("apps/v1 document", kubeOpenAPISummary(doc, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "io.k8s.api.core.v1.PodSpec"))
			}
		}
	}
	// kubectl's own test: does PATCH of these kinds take fieldValidation?
	verifier := cliresource.NewQueryParamVerifierV3(s.dyn, s.cs.Discovery().OpenAPIV3(), cliresource.QueryParamFieldValidation)
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "Secret"}, {Version: "v1", Kind: "Namespace"}, {Version: "v1", Kind: "ServiceAccount"},
		{Version: "v1", Kind: "Service"}, {Group: "apps", Version: "v1", Kind: "Deployment"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
	} {
		if err := verifier.HasSupport(gvk); err != nil {
			c.failf("kubectl's fieldValidation verifier for %s: %v", gvk.Kind, err)
		}
	}
	return nil
}

// kubeOpenAPISummary reports what kubectl reads from one GV document: the
// PATCH operation of a path (its GVK extension and fieldValidation
// parameter) and the strategic-merge keys of a schema.
func kubeOpenAPISummary(doc map[string]any, path, schemaName string) map[string]any {
	out := map[string]any{"openapi": doc["openapi"]}
	paths, _ := doc["paths"].(map[string]any)
	p, _ := paths[path].(map[string]any)
	patch, _ := p["patch"].(map[string]any)
	out["patchGVK"] = patch["x-kubernetes-group-version-kind"]
	out["patchAction"] = patch["x-kubernetes-action"]
	var params []string
	for _, prm := range append(kubeAnyList(patch["parameters"]), kubeAnyList(p["parameters"])...) {
		m, _ := prm.(map[string]any)
		if n, ok := m["name"].(string); ok {
			params = append(params, n+"("+fmt.Sprint(m["in"])+")")
		} else if ref, ok := m["$ref"].(string); ok {
			params = append(params, ref)
		}
	}
	sort.Strings(params)
	out["patchParameters"] = params
	if req, ok := patch["requestBody"].(map[string]any); ok {
		content, _ := req["content"].(map[string]any)
		out["patchContentTypes"] = kubeSortedKeys(content)
	}
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	out["schemaCount"] = len(schemas)
	if sch, ok := schemas[schemaName].(map[string]any); ok {
		props, _ := sch["properties"].(map[string]any)
		keys := map[string]any{}
		for name, pv := range props {
			pm, _ := pv.(map[string]any)
			ext := map[string]any{}
			for k, v := range pm {
				if strings.HasPrefix(k, "x-kubernetes-") {
					ext[k] = v
				}
			}
			if len(ext) > 0 {
				keys[name] = ext
			}
		}
		out[schemaName+" patch metadata"] = keys
	}
	return out
}

func kubeAnyList(v any) []any {
	l, _ := v.([]any)
	return l
}

func (s *kubeSuite) checkOpenAPIV2(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "GET", "/openapi/v2", map[string]string{"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}, nil)
	if err != nil {
		return err
	}
	c.record("GET /openapi/v2 (protobuf)", map[string]any{"status": r.Status, "contentType": r.ContentType, "nonEmpty": len(r.Body) > 0})
	c.expect(r.Status == 200, "status %d", r.Status)
	doc, err := s.cs.Discovery().OpenAPISchema()
	if err != nil {
		return fmt.Errorf("parse /openapi/v2: %w", err)
	}
	found := false
	if doc.GetDefinitions() != nil {
		for _, p := range doc.GetDefinitions().GetAdditionalProperties() {
			if p.GetName() == "io.k8s.api.apps.v1.Deployment" {
				found = true
			}
		}
	}
	c.expect(found, "/openapi/v2 lacks io.k8s.api.apps.v1.Deployment")
	return nil
}

// kubePick converts v to JSON and keeps only the given top-level keys.
func kubePick(v any, keys ...string) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	out := map[string]any{}
	for _, k := range keys {
		if x, ok := m[k]; ok {
			out[k] = x
		}
	}
	return out
}

// kubeStatusOf reduces an API error to its Status (what the server said).
func kubeStatusOf(err error) map[string]any {
	if err == nil {
		return map[string]any{"error": nil}
	}
	var st apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		st = s
	} else {
		return map[string]any{"error": err.Error()}
	}
	return kubePick(st.Status(), "kind", "apiVersion", "status", "message", "reason", "details", "code")
}
