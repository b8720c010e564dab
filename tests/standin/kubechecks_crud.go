package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

func (s *kubeSuite) crudChecks() []kubeCheckDef {
	return []kubeCheckDef{
		{"crud/generate-name", kubeLevelRancher, s.checkGenerateName},
		{"crud/update-conflict", kubeLevelRancher, s.checkUpdateConflict},
		{"crud/patch", kubeLevelRancher, s.checkPatch},
		{"crud/patch-order", kubeLevelStrict, s.checkPatchOrder},
		{"crud/delete-finalizers", kubeLevelRancher, s.checkDeleteFinalizers},
		{"crud/delete-response", kubeLevelStrict, s.checkDeleteResponse},
		{"crud/deletecollection", kubeLevelStrict, s.checkDeleteCollection},
		{"crud/status-subresource", kubeLevelStrict, s.checkStatusSubresource},
		{"crud/label-selectors", kubeLevelRancher, s.checkLabelSelectors},
		{"crud/field-selectors", kubeLevelRancher, s.checkFieldSelectors},
		{"crud/pagination", kubeLevelRancher, s.checkPagination},
		{"crud/namespace-terminating", kubeLevelRancher, s.checkNamespaceTerminating},
	}
}

// cm builds a labelled ConfigMap in the run namespace.
func (s *kubeSuite) cm(name string, labels map[string]string) *corev1.ConfigMap {
	l := map[string]string{kubeRunLabel: s.run}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: l}, Data: map[string]string{"k": "v"}}
}

func (s *kubeSuite) checkGenerateName(c *kubeCheck) error {
	prefix := s.name("gen") + "-"
	cm := s.cm("", nil)
	cm.GenerateName = prefix
	got, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, cm, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	s.norm.generated(got.Name, prefix)
	c.expect(strings.HasPrefix(got.Name, prefix) && len(got.Name) == len(prefix)+5, "generated name %q, want %s + 5 characters", got.Name, prefix)
	c.expect(got.GenerateName == prefix, "generateName %q not kept", got.GenerateName)
	c.expect(got.UID != "" && got.ResourceVersion != "" && !got.CreationTimestamp.IsZero(), "uid/resourceVersion/creationTimestamp missing")
	c.record("created", kubePick(got, "metadata", "data"))

	// the JSON answer of a create carries kind and apiVersion
	body := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"` + prefix + `"}}`)
	r, err := s.raw(c.ctx, "POST", "/api/v1/namespaces/"+s.ns+"/configmaps", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	obj, _ := r.JSON().(map[string]any)
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	s.norm.generated(name, prefix)
	c.expect(r.Status == 201, "POST: HTTP %d, want 201", r.Status)
	c.record("POST (json)", r.summary())
	return nil
}

func (s *kubeSuite) checkUpdateConflict(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	orig, err := cms.Create(c.ctx, s.cm(s.name("upd"), nil), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	next := orig.DeepCopy()
	next.Data["k"] = "v2"
	updated, err := cms.Update(c.ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	c.expect(updated.ResourceVersion != orig.ResourceVersion, "resourceVersion unchanged by update")
	c.record("update", kubePick(updated, "metadata", "data"))

	stale := orig.DeepCopy()
	stale.Data["k"] = "stale"
	_, err = cms.Update(c.ctx, stale, metav1.UpdateOptions{})
	c.expect(apierrors.IsConflict(err), "update with a stale resourceVersion: %v, want Conflict", err)
	c.record("typed update, stale resourceVersion", kubeStatusOf(err))

	body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": orig.Name, "resourceVersion": orig.ResourceVersion}, "data": map[string]string{"k": "stale"}})
	r, err := s.raw(c.ctx, "PUT", "/api/v1/namespaces/"+s.ns+"/configmaps/"+orig.Name, map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expectStatus("PUT stale (json)", r, 409, metav1.StatusReasonConflict)

	// An update without resourceVersion is unconditional for configmaps.
	body, _ = json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": orig.Name}, "data": map[string]string{"k": "v3"}})
	r, err = s.raw(c.ctx, "PUT", "/api/v1/namespaces/"+s.ns+"/configmaps/"+orig.Name, map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expect(r.Status == 200, "PUT without resourceVersion: HTTP %d, want 200", r.Status)
	c.record("PUT without resourceVersion", map[string]any{"status": r.Status})

	// Name in the body must match the URL.
	body, _ = json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "other"}})
	r, err = s.raw(c.ctx, "PUT", "/api/v1/namespaces/"+s.ns+"/configmaps/"+orig.Name, map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expectStatus("PUT with a mismatched name", r, 400, metav1.StatusReasonBadRequest)
	return nil
}

func (s *kubeSuite) testDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: map[string]string{kubeRunLabel: s.run, "gone": "soon"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "a", Image: "busybox:1", Env: []corev1.EnvVar{{Name: "A1", Value: "1"}}},
					{Name: "b", Image: "busybox:1", Env: []corev1.EnvVar{{Name: "B1", Value: "1"}, {Name: "B0", Value: "0"}}},
				}},
			},
		},
	}
}

// kubeDeploymentView is what the patch check records of a Deployment (the
// status is left out: a controller manager writes it asynchronously).
func kubeDeploymentView(d *appsv1.Deployment) map[string]any {
	var containers []map[string]any
	for _, ct := range d.Spec.Template.Spec.Containers {
		var env []string
		for _, e := range ct.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		containers = append(containers, map[string]any{"name": ct.Name, "image": ct.Image, "env": env})
	}
	annotations := map[string]string{}
	for k, v := range d.Annotations {
		if k != "deployment.kubernetes.io/revision" { // the deployment controller's
			annotations[k] = v
		}
	}
	return map[string]any{"labels": d.Labels, "annotations": annotations, "generation": d.Generation,
		"replicas": d.Spec.Replicas, "minReadySeconds": d.Spec.MinReadySeconds, "containers": containers}
}

func kubeContainerNames(d *appsv1.Deployment) string {
	var n []string
	for _, c := range d.Spec.Template.Spec.Containers {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

func kubeEnvOf(d *appsv1.Deployment, container string) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == container {
			var n []string
			for _, e := range c.Env {
				n = append(n, e.Name+"="+e.Value)
			}
			return strings.Join(n, ",")
		}
	}
	return "<no container>"
}

func (s *kubeSuite) checkPatch(c *kubeCheck) error {
	deps := s.cs.AppsV1().Deployments(s.ns)
	d, err := deps.Create(c.ctx, s.testDeployment(s.name("patch")), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	c.record("created", kubeDeploymentView(d))
	c.expect(d.Generation == 1, "generation %d after create, want 1", d.Generation)

	// JSON merge patch: add one label, delete another.
	d, err = deps.Patch(c.ctx, d.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"merged":"yes","gone":null}}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("merge patch: %w", err)
	}
	c.record("merge patch", kubeDeploymentView(d))
	c.expect(d.Labels["merged"] == "yes" && d.Labels["gone"] == "", "merge patch: labels %v", d.Labels)
	c.expect(d.Generation == 1, "metadata-only patch changed generation to %d", d.Generation)

	// JSON patch.
	d, err = deps.Patch(c.ctx, d.Name, types.JSONPatchType, []byte(`[{"op":"add","path":"/metadata/annotations","value":{"jp":"1"}},{"op":"add","path":"/spec/minReadySeconds","value":5},{"op":"test","path":"/metadata/labels/merged","value":"yes"}]`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("json patch: %w", err)
	}
	c.record("json patch", kubeDeploymentView(d))
	c.expect(d.Annotations["jp"] == "1" && d.Spec.MinReadySeconds == 5, "json patch not applied")
	c.expect(d.Generation == 2, "generation %d after a spec change, want 2", d.Generation)
	_, err = deps.Patch(c.ctx, d.Name, types.JSONPatchType, []byte(`[{"op":"test","path":"/spec/replicas","value":99}]`), metav1.PatchOptions{})
	c.expect(err != nil, "failing json patch test op accepted")
	c.record("json patch, failing test op", kubeStatusOf(err))

	// Strategic merge: containers merge by name, env by name; a new
	// container is added; $setElementOrder (sent by kubectl apply) orders.
	d, err = deps.Patch(c.ctx, d.Name, types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"b","env":[{"name":"B2","value":"2"}]},{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("strategic merge patch: %w", err)
	}
	c.record("strategic merge: merge by name", kubeDeploymentView(d))
	c.expect(kubeSameSet(kubeContainerNames(d), "a,b,c"), "containers %s, want a,b,c", kubeContainerNames(d))
	c.expect(kubeSameSet(kubeEnvOf(d, "b"), "B1=1,B0=0,B2=2"), "container b env %s, want B1=1,B0=0,B2=2 in some order", kubeEnvOf(d, "b"))

	d, err = deps.Patch(c.ctx, d.Name, types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"b"},{"name":"a"}],"containers":[{"name":"b","$setElementOrder/env":[{"name":"B2"},{"name":"B1"},{"name":"B0"}],"env":[{"name":"B0","value":"changed"}]}]}}}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("strategic merge patch with $setElementOrder: %w", err)
	}
	c.record("strategic merge: $setElementOrder", kubeDeploymentView(d))
	c.expect(kubeContainerNames(d) == "c,b,a", "containers %s, want c,b,a", kubeContainerNames(d))
	c.expect(kubeEnvOf(d, "b") == "B2=2,B1=1,B0=changed", "container b env %s, want B2=2,B1=1,B0=changed", kubeEnvOf(d, "b"))

	d, err = deps.Patch(c.ctx, d.Name, types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","$patch":"delete"},{"name":"b","env":[{"name":"B1","$patch":"delete"}]}]}}}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("strategic merge patch with $patch: delete: %w", err)
	}
	c.record("strategic merge: $patch delete", kubeDeploymentView(d))
	c.expect(kubeContainerNames(d) == "c,b", "containers %s, want c,b", kubeContainerNames(d))
	c.expect(kubeEnvOf(d, "b") == "B2=2,B0=changed", "container b env %s, want B2=2,B0=changed", kubeEnvOf(d, "b"))

	// Strategic merge on a kind without patch metadata (custom resources)
	// is rejected; on a ConfigMap it is a plain merge.
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, s.cm(s.name("smp"), nil), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	cm, err = s.cs.CoreV1().ConfigMaps(s.ns).Patch(c.ctx, cm.Name, types.StrategicMergePatchType, []byte(`{"data":{"k2":"v2"}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("strategic merge patch of a configmap: %w", err)
	}
	c.expect(cm.Data["k"] == "v" && cm.Data["k2"] == "v2", "configmap strategic merge: data %v", cm.Data)

	// Patching something that does not exist.
	_, err = deps.Patch(c.ctx, s.name("nopatch"), types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	c.expect(apierrors.IsNotFound(err), "patch of a missing object: %v, want NotFound", err)
	return nil
}

// checkPatchOrder: where a strategic merge puts new list items when the
// patch carries no $setElementOrder (kubectl apply always sends one).
func (s *kubeSuite) checkPatchOrder(c *kubeCheck) error {
	deps := s.cs.AppsV1().Deployments(s.ns)
	d, err := deps.Create(c.ctx, s.testDeployment(s.name("order")), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	d, err = deps.Patch(c.ctx, d.Name, types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"b","env":[{"name":"B2","value":"2"}]},{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
	if err != nil {
		return err
	}
	c.record("order after merge", map[string]any{"containers": kubeContainerNames(d), "env b": kubeEnvOf(d, "b")})
	c.expect(kubeContainerNames(d) == "a,b,c", "containers %s, want a,b,c", kubeContainerNames(d))
	c.expect(kubeEnvOf(d, "b") == "B2=2,B1=1,B0=0", "container b env %s, want B2=2,B1=1,B0=0", kubeEnvOf(d, "b"))
	return nil
}

func kubeSameSet(a, b string) bool {
	x, y := strings.Split(a, ","), strings.Split(b, ",")
	sort.Strings(x)
	sort.Strings(y)
	return strings.Join(x, ",") == strings.Join(y, ",")
}

func (s *kubeSuite) checkDeleteFinalizers(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	cm := s.cm(s.name("fin"), nil)
	cm.Finalizers = []string{"scaleagent.test/hold"}
	created, err := cms.Create(c.ctx, cm, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	w, err := cms.Watch(c.ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + cm.Name, ResourceVersion: created.ResourceVersion})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()

	r, err := s.raw(c.ctx, "DELETE", "/api/v1/namespaces/"+s.ns+"/configmaps/"+cm.Name, kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.record("DELETE with a finalizer (json)", r.summary())
	c.expect(r.Status == 200 || r.Status == 202, "DELETE: HTTP %d", r.Status)
	got, err := cms.Get(c.ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get after delete: %w", err)
	}
	c.expect(got.DeletionTimestamp != nil, "deletionTimestamp not set while a finalizer is pending")
	c.expect(len(got.Finalizers) == 1, "finalizers %v", got.Finalizers)
	c.record("get while finalizing", kubePick(got, "metadata"))

	// A second delete is accepted and changes nothing.
	err = cms.Delete(c.ctx, cm.Name, metav1.DeleteOptions{})
	c.expect(err == nil, "second delete: %v", err)

	// New finalizers cannot be added once deleting.
	add := got.DeepCopy()
	add.Finalizers = append(add.Finalizers, "scaleagent.test/another")
	_, err = cms.Update(c.ctx, add, metav1.UpdateOptions{})
	c.record("add a finalizer while deleting", kubeStatusOf(err))
	c.expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err), "adding a finalizer while deleting: %v, want an error", err)

	got.Finalizers = nil
	if _, err := cms.Update(c.ctx, got, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	err = kubePoll(c.ctx, 20*time.Millisecond, 5*time.Second, func() (bool, error) {
		_, err := cms.Get(c.quiet(), cm.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	c.expect(err == nil, "object still present after its last finalizer was removed")

	var events []string
	timeout := time.After(s.opts.SyncTimeout)
loop:
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				break loop
			}
			e := string(ev.Type)
			if m, ok := ev.Object.(*corev1.ConfigMap); ok && m.DeletionTimestamp != nil {
				e += "(deleting)"
			}
			events = append(events, e)
			if ev.Type == watch.Deleted {
				break loop
			}
		case <-timeout:
			break loop
		}
	}
	c.record("watch events", events)
	c.expect(len(events) >= 2 && events[0] == "MODIFIED(deleting)" && events[len(events)-1] == "DELETED(deleting)",
		"watch saw %v, want MODIFIED(deleting) … DELETED(deleting)", events)
	return nil
}

func (s *kubeSuite) checkDeleteResponse(c *kubeCheck) error {
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, s.cm(s.name("del"), nil), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	r, err := s.raw(c.ctx, "DELETE", "/api/v1/namespaces/"+s.ns+"/configmaps/"+cm.Name, kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.record("DELETE configmap (json)", r.summary())
	c.expect(r.Status == 200, "DELETE: HTTP %d", r.Status)

	// with a JSON DeleteOptions body and a precondition that fails
	cm, err = s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, s.cm(s.name("del2"), nil), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	body := []byte(`{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"resourceVersion":"1"}}`)
	r, err = s.raw(c.ctx, "DELETE", "/api/v1/namespaces/"+s.ns+"/configmaps/"+cm.Name, map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expectStatus("DELETE with a failing precondition", r, 409, metav1.StatusReasonConflict)
	// typed delete (protobuf DeleteOptions body) with propagation policy
	err = s.cs.CoreV1().ConfigMaps(s.ns).Delete(c.ctx, cm.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground), Preconditions: &metav1.Preconditions{UID: &cm.UID}})
	c.expect(err == nil, "typed delete with a matching uid precondition: %v", err)
	err = s.cs.CoreV1().ConfigMaps(s.ns).Delete(c.ctx, cm.Name, metav1.DeleteOptions{})
	c.expect(apierrors.IsNotFound(err), "delete again: %v, want NotFound", err)
	return nil
}

func (s *kubeSuite) checkDeleteCollection(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	for i := 0; i < 3; i++ {
		if _, err := cms.Create(c.ctx, s.cm(s.name("dc", fmt.Sprint(i)), map[string]string{"dc": "yes"}), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := cms.Create(c.ctx, s.cm(s.name("dc", "keep"), map[string]string{"dc": "no"}), metav1.CreateOptions{}); err != nil {
		return err
	}
	sel := url.QueryEscape(kubeRunLabel + "=" + s.run + ",dc=yes")
	r, err := s.raw(c.ctx, "DELETE", "/api/v1/namespaces/"+s.ns+"/configmaps?labelSelector="+sel, kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.record("DELETE collection (json)", kubeSummaryItems(r))
	c.expect(r.Status == 200, "deletecollection: HTTP %d", r.Status)
	list, err := cms.List(c.ctx, metav1.ListOptions{LabelSelector: kubeRunLabel + "=" + s.run + ",dc"})
	if err != nil {
		return err
	}
	var left []string
	for _, i := range list.Items {
		left = append(left, i.Name)
	}
	c.expect(len(left) == 1 && left[0] == s.name("dc", "keep"), "left after deletecollection: %v", left)
	// typed deletecollection (protobuf DeleteOptions body)
	err = cms.DeleteCollection(c.ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: kubeRunLabel + "=" + s.run + ",dc=no"})
	c.expect(err == nil, "typed deletecollection: %v", err)
	return nil
}

// kubeSummaryItems records a list answer with its items reduced to names.
func kubeSummaryItems(r kubeRaw) map[string]any {
	m := r.summary()
	if body, ok := m["body"].(map[string]any); ok {
		if items, ok := body["items"].([]any); ok {
			var names []string
			for _, it := range items {
				im, _ := it.(map[string]any)
				md, _ := im["metadata"].(map[string]any)
				names = append(names, fmt.Sprint(md["name"]))
			}
			sort.Strings(names)
			b := map[string]any{}
			for k, v := range body {
				b[k] = v
			}
			b["items"] = names
			m["body"] = b
		}
	}
	return m
}

func (s *kubeSuite) checkStatusSubresource(c *kubeCheck) error {
	if s.nodeName == "" {
		return fmt.Errorf("no node (setup failed)")
	}
	nodes := s.cs.CoreV1().Nodes()
	n, err := nodes.Get(c.ctx, s.nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(n.Status.Conditions) == 0 {
		return fmt.Errorf("node %s has no status conditions (its create dropped the status)", n.Name)
	}
	// An update of the main resource ignores status changes.
	upd := n.DeepCopy()
	upd.Labels["scaleagent.test/updated"] = "main"
	upd.Status.Conditions[0].Message = "changed through the main resource"
	got, err := nodes.Update(c.ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	c.expect(got.Labels["scaleagent.test/updated"] == "main", "label not updated")
	c.expect(got.Status.Conditions[0].Message == n.Status.Conditions[0].Message, "main-resource update changed status")
	// A status update changes status and ignores metadata/spec changes.
	st := got.DeepCopy()
	st.Labels["scaleagent.test/updated"] = "status"
	st.Spec.Unschedulable = true
	st.Status.Conditions[0].Message = "changed through status"
	got, err = nodes.UpdateStatus(c.ctx, st, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	c.record("after status update", map[string]any{"label": got.Labels["scaleagent.test/updated"],
		"unschedulable": got.Spec.Unschedulable, "message": got.Status.Conditions[0].Message})
	c.expect(got.Status.Conditions[0].Message == "changed through status", "status update did not change status")
	c.expect(!got.Spec.Unschedulable, "status update changed spec")
	// nodes/status takes metadata changes (most other status strategies,
	// custom resources included, reset metadata)
	c.expect(got.Labels["scaleagent.test/updated"] == "status", "nodes/status update did not change labels (a real server takes them)")
	// Merge patch of the status subresource.
	got, err = nodes.Patch(c.ctx, s.nodeName, types.MergePatchType, []byte(`{"status":{"capacity":{"pods":"111"}}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	c.expect(got.Status.Capacity.Pods().String() == "111", "status patch: pods capacity %s", got.Status.Capacity.Pods())
	return nil
}

func (s *kubeSuite) checkLabelSelectors(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	objs := map[string]map[string]string{
		"sel-1": {"tier": "a", "env": "x"},
		"sel-2": {"tier": "b", "env": "x"},
		"sel-3": {"tier": "c"},
		"sel-4": {},
	}
	for _, name := range kubeSortedKeys(objs) {
		if _, err := cms.Create(c.ctx, s.cm(s.name(name), kubeWith(objs[name], "sel", "yes")), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	cases := []struct{ sel, want string }{
		{"tier=a", "sel-1"},
		{"tier==a", "sel-1"},
		{"tier!=a", "sel-2,sel-3,sel-4"},
		{"tier in (a,b)", "sel-1,sel-2"},
		{"tier notin (a,b)", "sel-3,sel-4"},
		{"tier", "sel-1,sel-2,sel-3"},
		{"!tier", "sel-4"},
		{"tier=a,env=x", "sel-1"},
		{"env=x,tier!=b", "sel-1"},
		{"env in (x),!missing", "sel-1,sel-2"},
	}
	results := map[string]string{}
	for _, tc := range cases {
		list, err := cms.List(c.ctx, metav1.ListOptions{LabelSelector: kubeRunLabel + "=" + s.run + ",sel=yes," + tc.sel})
		if err != nil {
			c.failf("selector %q: %v", tc.sel, err)
			continue
		}
		var names []string
		for _, i := range list.Items {
			names = append(names, strings.TrimPrefix(i.Name, s.prefix+"-"))
		}
		sort.Strings(names)
		got := strings.Join(names, ",")
		results[tc.sel] = got
		c.expect(got == tc.want, "selector %q selected %q, want %q", tc.sel, got, tc.want)
	}
	c.record("selected", results)
	// all-namespaces list with a selector
	list, err := s.cs.CoreV1().ConfigMaps("").List(c.ctx, metav1.ListOptions{LabelSelector: kubeRunLabel + "=" + s.run + ",sel=yes,tier=a"})
	if err != nil {
		return fmt.Errorf("all-namespaces list: %w", err)
	}
	c.expect(len(list.Items) == 1, "all-namespaces list selected %d, want 1", len(list.Items))
	return nil
}

func kubeWith(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (s *kubeSuite) checkFieldSelectors(c *kubeCheck) error {
	secrets := func(ns string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.name("fs"), Namespace: ns, Labels: map[string]string{kubeRunLabel: s.run}},
			Type: corev1.SecretTypeOpaque, StringData: map[string]string{"k": "v"}}
	}
	for _, ns := range []string{s.ns, s.name("b")} {
		if _, err := s.cs.CoreV1().Secrets(ns).Create(c.ctx, secrets(ns), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	count := func(label, ns, fsel, lsel string) int {
		list, err := s.cs.CoreV1().Secrets(ns).List(c.ctx, metav1.ListOptions{FieldSelector: fsel, LabelSelector: lsel})
		if err != nil {
			c.failf("%s: %v", label, err)
			return -1
		}
		return len(list.Items)
	}
	results := map[string]int{}
	// the cavalidator informer's selector shape (cluster-wide, two fields)
	results["metadata.namespace+metadata.name (all namespaces)"] = count("cavalidator shape", "", "metadata.namespace="+s.ns+",metadata.name="+s.name("fs"), "")
	results["metadata.name (all namespaces)"] = count("name only", "", "metadata.name="+s.name("fs"), "")
	results["metadata.name!= (namespaced, labelled)"] = count("name !=", s.ns, "metadata.name!="+s.name("fs"), kubeRunLabel+"="+s.run)
	results["type=Opaque (labelled)"] = count("type", "", "type=Opaque", kubeRunLabel+"="+s.run)
	results["type=kubernetes.io/tls (labelled)"] = count("type tls", "", "type=kubernetes.io/tls", kubeRunLabel+"="+s.run)
	c.record("counts", results)
	c.expect(results["metadata.namespace+metadata.name (all namespaces)"] == 1, "namespace+name selected %d, want 1", results["metadata.namespace+metadata.name (all namespaces)"])
	c.expect(results["metadata.name (all namespaces)"] == 2, "name selected %d, want 2", results["metadata.name (all namespaces)"])
	c.expect(results["metadata.name!= (namespaced, labelled)"] == 0, "name!= selected %d, want 0", results["metadata.name!= (namespaced, labelled)"])
	c.expect(results["type=Opaque (labelled)"] == 2, "type=Opaque selected %d, want 2", results["type=Opaque (labelled)"])
	c.expect(results["type=kubernetes.io/tls (labelled)"] == 0, "type=tls selected %d, want 0", results["type=kubernetes.io/tls (labelled)"])

	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/secrets?fieldSelector=spec.bogus%3Dx", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("unsupported field selector", r, 400, metav1.StatusReasonBadRequest)
	return nil
}

func (s *kubeSuite) checkPagination(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	var want []string
	for i := 0; i < 7; i++ {
		name := s.name(fmt.Sprintf("page-%d", i))
		want = append(want, name)
		if _, err := cms.Create(c.ctx, s.cm(name, map[string]string{"page": "yes"}), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	sel := kubeRunLabel + "=" + s.run + ",page=yes"
	var got []string
	var pages []map[string]any
	cont := ""
	listRV := ""
	for i := 0; i < 10; i++ {
		list, err := cms.List(c.ctx, metav1.ListOptions{LabelSelector: sel, Limit: 3, Continue: cont})
		if err != nil {
			return fmt.Errorf("page %d: %w", i, err)
		}
		if i == 0 {
			listRV = list.ResourceVersion
		} else {
			c.expect(list.ResourceVersion == listRV, "page %d resourceVersion %s, first page %s (a paged list is one snapshot)", i, list.ResourceVersion, listRV)
		}
		page := map[string]any{"items": len(list.Items), "continue": list.Continue != ""}
		if list.RemainingItemCount != nil {
			page["remainingItemCount"] = *list.RemainingItemCount
		}
		pages = append(pages, page)
		for _, it := range list.Items {
			got = append(got, it.Name)
		}
		cont = list.Continue
		if cont == "" {
			break
		}
		if i == 0 {
			// an object created after the first page is not in later pages
			if _, err := cms.Create(c.ctx, s.cm(s.name("page-late"), map[string]string{"page": "yes"}), metav1.CreateOptions{}); err != nil {
				return err
			}
		}
	}
	c.record("pages", pages)
	c.expect(strings.Join(got, ",") == strings.Join(want, ","), "paged names %v, want %v (sorted by name, snapshot of the first page)", got, want)
	c.expect(len(pages) == 3, "%d pages, want 3", len(pages))

	// the whole list in one go, now including the late object
	list, err := cms.List(c.ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return err
	}
	c.expect(len(list.Items) == 8, "unpaged list has %d items, want 8", len(list.Items))
	c.expect(list.Continue == "", "unpaged list has a continue token")

	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps?limit=2&continue=bogus", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("invalid continue token", r, 400, metav1.StatusReasonBadRequest)
	return nil
}

// checkNamespaceTerminating deletes a namespace that holds an object and a
// foreign metadata finalizer, as Rancher's namespace-auth finalizer does.
func (s *kubeSuite) checkNamespaceTerminating(c *kubeCheck) error {
	name := s.name("term")
	nss := s.cs.CoreV1().Namespaces()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{kubeRunLabel: s.run},
		Finalizers: []string{"controller.cattle.io/namespace-auth"}}}
	if _, err := nss.Create(c.ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	s.onCleanup(func(ctx context.Context) { // in case the check stops half-way
		if n, err := nss.Get(ctx, name, metav1.GetOptions{}); err == nil && len(n.Finalizers) > 0 {
			n.Finalizers = nil
			_, _ = nss.Update(ctx, n, metav1.UpdateOptions{})
		}
		_ = nss.Delete(ctx, name, metav1.DeleteOptions{})
	})
	if _, err := s.cs.CoreV1().ConfigMaps(name).Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "content"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	r, err := s.raw(c.ctx, "DELETE", "/api/v1/namespaces/"+name, kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	obj, _ := r.JSON().(map[string]any)
	c.record("DELETE namespace (json)", map[string]any{"status": r.Status, "kind": obj["kind"], "phase": kubeDig(obj, "status", "phase"),
		"deletionTimestamp": kubeDig(obj, "metadata", "deletionTimestamp") != nil, "finalizers": kubeDig(obj, "metadata", "finalizers"),
		"specFinalizers": kubeDig(obj, "spec", "finalizers")})
	c.expect(r.Status == 200, "DELETE namespace: HTTP %d", r.Status)
	got, err := nss.Get(c.ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get terminating namespace: %w", err)
	}
	c.expect(got.Status.Phase == corev1.NamespaceTerminating, "phase %q, want Terminating", got.Status.Phase)
	c.expect(got.DeletionTimestamp != nil, "deletionTimestamp not set")

	_, err = s.cs.CoreV1().ConfigMaps(name).Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	c.record("create in a terminating namespace", kubeStatusOf(err))
	c.expect(apierrors.IsForbidden(err), "create in a terminating namespace: %v, want Forbidden", err)

	// Rancher removes its finalizer with a PUT, retrying on conflict (a
	// real namespace controller updates the status meanwhile, so the
	// number of attempts is left out of the transcript).
	var updated *corev1.Namespace
	for i := 0; i < 5; i++ {
		got.Finalizers = nil
		updated, err = nss.Update(c.quiet(), got, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			break
		}
		if got, err = nss.Get(c.quiet(), name, metav1.GetOptions{}); err != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	c.record("finalizer removed by PUT", map[string]any{"phase": updated.Status.Phase, "finalizers": updated.Finalizers,
		"specFinalizers": updated.Spec.Finalizers, "deletionTimestamp": updated.DeletionTimestamp != nil})
	s.deletingNS = name
	s.deletingNSStart = time.Now()
	return nil
}

// checkNamespaceDeleted runs last: the namespace deleted above must be gone
// (contents removed, spec.finalizers processed) by now.
func (s *kubeSuite) checkNamespaceDeleted(c *kubeCheck) error {
	if s.deletingNS == "" {
		return fmt.Errorf("crud/namespace-terminating did not get to the delete")
	}
	remaining := s.opts.NamespaceDeleteTimeout - time.Since(s.deletingNSStart)
	if remaining < time.Second {
		remaining = time.Second
	}
	var last *corev1.Namespace
	err := kubePoll(c.ctx, 100*time.Millisecond, remaining, func() (bool, error) {
		ns, err := s.cs.CoreV1().Namespaces().Get(c.quiet(), s.deletingNS, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		last = ns
		return false, nil
	})
	if err != nil {
		if last != nil {
			c.record("still present", kubePick(last, "spec", "status"))
		}
		return fmt.Errorf("namespace still present %s after deletion", s.opts.NamespaceDeleteTimeout)
	}
	_, err = s.cs.CoreV1().ConfigMaps(s.deletingNS).Get(c.ctx, "content", metav1.GetOptions{})
	c.expect(apierrors.IsNotFound(err), "content of the deleted namespace: %v, want NotFound", err)
	return nil
}

// kubeDig walks nested maps.
func kubeDig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
