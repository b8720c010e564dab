package main

import (
	"context"
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func (s *kubeSuite) tableChecks() []kubeCheckDef {
	return []kubeCheckDef{
		{"table/nodes", kubeLevelStrict, s.checkTableNodes},
		{"table/pods", kubeLevelStrict, s.checkTablePods},
		{"table/configmaps", kubeLevelStrict, s.checkTableConfigMaps},
	}
}

// kubeAcceptTable is what steve (and, with fallbacks, kubectl get) sends.
const kubeAcceptTable = "application/json;as=Table;v=v1;g=meta.k8s.io"

// getTable fetches path as a Table, checks the envelope and the column
// names, and records it with the Age column (and any other listed
// volatile column) masked.
func (s *kubeSuite) getTable(c *kubeCheck, step, path string, wantColumns []string, mask ...string) map[string]any {
	r, err := s.raw(c.ctx, "GET", path, map[string]string{"Accept": kubeAcceptTable}, nil)
	if err != nil {
		c.failf("%s: %v", step, err)
		return nil
	}
	t, _ := r.JSON().(map[string]any)
	if !c.expect(r.Status == 200, "%s: HTTP %d", step, r.Status) {
		c.record(step, r.summary())
		return nil
	}
	c.expect(t["kind"] == "Table" && t["apiVersion"] == "meta.k8s.io/v1", "%s: kind %v apiVersion %v", step, t["kind"], t["apiVersion"])
	c.expect(r.ContentType == "application/json", "%s: content type %q", step, r.ContentType)
	cols, _ := t["columnDefinitions"].([]any)
	var names []string
	maskIdx := map[int]bool{}
	for i, col := range cols {
		m, _ := col.(map[string]any)
		n := fmt.Sprint(m["name"])
		names = append(names, n)
		if n == "Age" {
			maskIdx[i] = true
		}
		for _, x := range mask {
			if n == x {
				maskIdx[i] = true
			}
		}
	}
	for i, w := range wantColumns {
		if i >= len(names) || names[i] != w {
			c.failf("%s: columns %v, want %v first", step, names, wantColumns)
			break
		}
	}
	rows, _ := t["rows"].([]any)
	for _, row := range rows {
		rm, _ := row.(map[string]any)
		cells, _ := rm["cells"].([]any)
		for i := range cells {
			if maskIdx[i] {
				cells[i] = "<age>"
			}
		}
		obj, _ := rm["object"].(map[string]any)
		c.expect(obj["kind"] == "PartialObjectMetadata" && obj["apiVersion"] == "meta.k8s.io/v1",
			"%s: row object %v/%v, want PartialObjectMetadata (includeObject defaults to Metadata)", step, obj["kind"], obj["apiVersion"])
	}
	c.record(step, map[string]any{"contentType": r.ContentType, "table": t})
	return t
}

func (s *kubeSuite) checkTableNodes(c *kubeCheck) error {
	if s.nodeName == "" {
		return fmt.Errorf("no node (setup failed)")
	}
	path := "/api/v1/nodes?fieldSelector=" + url.QueryEscape("metadata.name="+s.nodeName)
	t := s.getTable(c, "nodes table", path, []string{"Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"})
	rows, _ := t["rows"].([]any)
	c.expect(len(rows) == 1, "nodes table has %d rows, want 1", len(rows))
	// single object GET as a Table
	s.getTable(c, "node table (single object)", "/api/v1/nodes/"+s.nodeName, []string{"Name"})
	return nil
}

func (s *kubeSuite) checkTablePods(c *kubeCheck) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name("pod"), Namespace: s.ns, Labels: map[string]string{kubeRunLabel: s.run}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "main", Image: "busybox:1", Command: []string{"sleep", "3600"}}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if _, err := s.cs.CoreV1().Pods(s.ns).Create(c.ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.CoreV1().Pods(s.ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	t := s.getTable(c, "pods table", "/api/v1/namespaces/"+s.ns+"/pods?labelSelector="+url.QueryEscape(kubeRunLabel+"="+s.run), []string{"Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"})
	rows, _ := t["rows"].([]any)
	c.expect(len(rows) == 1, "pods table has %d rows, want 1", len(rows))
	// all namespaces, label-selected
	s.getTable(c, "pods table (all namespaces)", "/api/v1/pods?labelSelector="+url.QueryEscape(kubeRunLabel+"="+s.run), []string{"Name"})
	return nil
}

func (s *kubeSuite) checkTableConfigMaps(c *kubeCheck) error {
	if _, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, s.cm(s.name("table"), map[string]string{"t": "yes"}), metav1.CreateOptions{}); err != nil {
		return err
	}
	sel := url.QueryEscape(kubeRunLabel + "=" + s.run + ",t=yes")
	t := s.getTable(c, "configmaps table", "/api/v1/namespaces/"+s.ns+"/configmaps?labelSelector="+sel, []string{"Name", "Data", "Age"})
	rows, _ := t["rows"].([]any)
	c.expect(len(rows) == 1, "configmaps table has %d rows, want 1", len(rows))

	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps?includeObject=Object&labelSelector="+sel, map[string]string{"Accept": kubeAcceptTable}, nil)
	if err != nil {
		return err
	}
	obj := kubeDig(r.JSON(), "rows")
	rowList, _ := obj.([]any)
	if c.expect(len(rowList) == 1, "includeObject=Object: %d rows", len(rowList)) {
		o := kubeDig(rowList[0], "object")
		c.expect(kubeDig(o, "kind") == "ConfigMap", "includeObject=Object: row object kind %v, want ConfigMap", kubeDig(o, "kind"))
	}
	// Table plus fallback, the way kubectl get asks
	r, err = s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps?limit=500&labelSelector="+sel,
		map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"}, nil)
	if err != nil {
		return err
	}
	c.expect(kubeDig(r.JSON(), "kind") == "Table", "kubectl-style Accept: kind %v, want Table", kubeDig(r.JSON(), "kind"))
	return nil
}
