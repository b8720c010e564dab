package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

var kubeCRDGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (s *kubeSuite) crdChecks() []kubeCheckDef {
	return []kubeCheckDef{
		{"crd/establish", kubeLevelStrict, s.checkCRDEstablish},
		{"crd/crud", kubeLevelStrict, s.checkCRDCrud},
		{"crd/watch", kubeLevelStrict, s.checkCRDWatch},
		{"crd/table", kubeLevelStrict, s.checkCRDTable},
	}
}

func (s *kubeSuite) crdGroup() string { return s.prefix + ".scaleagent.test" }

func (s *kubeSuite) widgetsGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: s.crdGroup(), Version: "v1", Resource: "widgets"}
}

func (s *kubeSuite) checkCRDEstablish(c *kubeCheck) error {
	group := s.crdGroup()
	name := "widgets." + group
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": name, "labels": map[string]any{kubeRunLabel: s.run}},
		"spec": map[string]any{
			"group": group, "scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": []any{"wdg"}},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"additionalPrinterColumns": []any{
					map[string]any{"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
					map[string]any{"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
					map[string]any{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
				},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec": map[string]any{"type": "object", "properties": map[string]any{
							"size":  map[string]any{"type": "integer", "minimum": int64(0)},
							"color": map[string]any{"type": "string"},
						}},
						"status": map[string]any{"type": "object", "properties": map[string]any{
							"phase": map[string]any{"type": "string"},
						}},
					},
				}},
			}},
		},
	}}
	crds := s.dyn.Resource(kubeCRDGVR)
	if _, err := crds.Create(c.ctx, crd, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create CRD: %w", err)
	}
	s.onCleanup(func(ctx context.Context) { _ = crds.Delete(ctx, name, metav1.DeleteOptions{}) })
	var got *unstructured.Unstructured
	start := time.Now()
	err := kubePoll(c.ctx, 20*time.Millisecond, s.opts.SyncTimeout, func() (bool, error) {
		var err error
		got, err = crds.Get(c.quiet(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return kubeCondition(got, "Established") == "True" && kubeCondition(got, "NamesAccepted") == "True", nil
	})
	if err != nil {
		return fmt.Errorf("CRD not Established: %v", err)
	}
	s.logf("     CRD established in %s", time.Since(start).Round(time.Millisecond))
	var conds []any
	for _, cd := range kubeAnyList(kubeDig(got.Object, "status", "conditions")) {
		m, _ := cd.(map[string]any)
		conds = append(conds, map[string]any{"type": m["type"], "status": m["status"], "reason": m["reason"], "message": m["message"]})
	}
	c.record("conditions", conds)
	c.record("acceptedNames", kubeDig(got.Object, "status", "acceptedNames"))
	c.record("storedVersions", kubeDig(got.Object, "status", "storedVersions"))

	// served: discovery of the new group (a real server needs a moment)
	err = kubePoll(c.ctx, 50*time.Millisecond, s.opts.SyncTimeout, func() (bool, error) {
		r, err := s.raw(c.quiet(), "GET", "/apis/"+group+"/v1", kubeAcceptJSON, nil)
		if err != nil {
			return false, err
		}
		return r.Status == 200, nil
	})
	if err != nil {
		return fmt.Errorf("/apis/%s/v1 not served: %v", group, err)
	}
	r, err := s.raw(c.ctx, "GET", "/apis/"+group+"/v1", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	sum := r.summary()
	for _, e := range kubeAnyList(kubeDig(sum, "body", "resources")) {
		if m, ok := e.(map[string]any); ok && m["storageVersionHash"] != nil {
			m["storageVersionHash"] = "<hash>" // derived from the (per-run) group
		}
	}
	c.record("GET /apis/<group>/v1", sum)
	var names []string
	for _, e := range kubeAnyList(kubeDig(r.JSON(), "resources")) {
		names = append(names, fmt.Sprint(kubeDig(e, "name")))
	}
	c.expect(strings.Join(names, ",") == "widgets,widgets/status", "resources %v", names)
	return nil
}

func kubeCondition(u *unstructured.Unstructured, typ string) string {
	for _, cd := range kubeAnyList(kubeDig(u.Object, "status", "conditions")) {
		if kubeDig(cd, "type") == typ {
			return fmt.Sprint(kubeDig(cd, "status"))
		}
	}
	return ""
}

func (s *kubeSuite) widget(name string, size int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": s.crdGroup() + "/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name, "labels": map[string]any{kubeRunLabel: s.run}},
		"spec":     map[string]any{"size": size, "color": "red"},
	}}
}

func (s *kubeSuite) checkCRDCrud(c *kubeCheck) error {
	res := s.dyn.Resource(s.widgetsGVR()).Namespace(s.ns)
	w, err := res.Create(c.ctx, s.widget("w1", 3), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	c.record("created", w.Object)
	c.expect(w.GetGeneration() == 1, "generation %d, want 1", w.GetGeneration())

	got, err := res.Get(c.ctx, "w1", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	// update, then a stale update
	_ = unstructured.SetNestedField(got.Object, int64(4), "spec", "size")
	upd, err := res.Update(c.ctx, got, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	c.expect(upd.GetGeneration() == 2, "generation %d after a spec update, want 2", upd.GetGeneration())
	_, err = res.Update(c.ctx, got, metav1.UpdateOptions{})
	c.expect(apierrors.IsConflict(err), "stale update: %v, want Conflict", err)

	// status subresource: the main resource ignores status, /status only
	// takes status
	_ = unstructured.SetNestedField(upd.Object, "Ignored", "status", "phase")
	upd, err = res.Update(c.ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update with status: %w", err)
	}
	phase, _, _ := unstructured.NestedString(upd.Object, "status", "phase")
	c.expect(phase == "", "main-resource update set status.phase %q", phase)
	_ = unstructured.SetNestedField(upd.Object, "Ready", "status", "phase")
	_ = unstructured.SetNestedField(upd.Object, int64(99), "spec", "size")
	st, err := res.UpdateStatus(c.ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	phase, _, _ = unstructured.NestedString(st.Object, "status", "phase")
	size, _, _ := unstructured.NestedInt64(st.Object, "spec", "size")
	c.expect(phase == "Ready" && size == 4, "after status update: phase %q size %d, want Ready 4", phase, size)
	c.expect(st.GetGeneration() == 2, "status update changed generation to %d", st.GetGeneration())

	// patches: merge and JSON work, strategic merge is not for CRs
	p, err := res.Patch(c.ctx, "w1", types.MergePatchType, []byte(`{"spec":{"color":"blue"}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("merge patch: %w", err)
	}
	color, _, _ := unstructured.NestedString(p.Object, "spec", "color")
	c.expect(color == "blue", "merge patch: color %q", color)
	_, err = res.Patch(c.ctx, "w1", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/size","value":5}]`), metav1.PatchOptions{})
	c.expect(err == nil, "json patch: %v", err)
	_, err = res.Patch(c.ctx, "w1", types.StrategicMergePatchType, []byte(`{"spec":{"color":"green"}}`), metav1.PatchOptions{})
	c.expect(apierrors.IsUnsupportedMediaType(err), "strategic merge patch of a CR: %v, want UnsupportedMediaType", err)
	c.record("strategic merge patch of a CR", kubeStatusOf(err))

	// validation
	bad := s.widget("w-bad", 1)
	_ = unstructured.SetNestedField(bad.Object, "big", "spec", "size")
	_, err = res.Create(c.ctx, bad, metav1.CreateOptions{})
	c.expect(apierrors.IsInvalid(err), "schema violation: %v, want Invalid", err)
	c.record("schema violation", kubeStatusOf(err))
	bad = s.widget("w-neg", -1)
	_, err = res.Create(c.ctx, bad, metav1.CreateOptions{})
	c.expect(apierrors.IsInvalid(err), "minimum violation: %v, want Invalid", err)
	unknown := s.widget("w-unknown", 1)
	_ = unstructured.SetNestedField(unknown.Object, "x", "spec", "bogus")
	_, err = res.Create(c.ctx, unknown, metav1.CreateOptions{FieldValidation: "Strict"})
	c.expect(apierrors.IsBadRequest(err), "unknown field with fieldValidation=Strict: %v, want BadRequest", err)
	c.record("unknown field, Strict", kubeStatusOf(err))
	pruned, err := res.Create(c.ctx, unknown, metav1.CreateOptions{FieldValidation: "Ignore"})
	if err != nil {
		return fmt.Errorf("create with an unknown field, Ignore: %w", err)
	}
	_, found, _ := unstructured.NestedString(pruned.Object, "spec", "bogus")
	c.expect(!found, "unknown field not pruned")

	list, err := res.List(c.ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	c.expect(len(list.Items) == 2, "list: %d items, want 2", len(list.Items))
	c.expect(list.GetKind() == "WidgetList", "list kind %q, want WidgetList", list.GetKind())
	all, err := s.dyn.Resource(s.widgetsGVR()).List(c.ctx, metav1.ListOptions{})
	c.expect(err == nil && len(all.Items) == 2, "all-namespaces list: %v", err)

	err = res.Delete(c.ctx, "w1", metav1.DeleteOptions{})
	c.expect(err == nil, "delete: %v", err)
	_, err = res.Get(c.ctx, "w1", metav1.GetOptions{})
	c.expect(apierrors.IsNotFound(err), "get after delete: %v, want NotFound", err)
	c.record("not found", kubeStatusOf(err))
	return nil
}

func (s *kubeSuite) checkCRDWatch(c *kubeCheck) error {
	res := s.dyn.Resource(s.widgetsGVR()).Namespace(s.ns)
	list, err := res.List(c.ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	// a dynamic informer (watch-list, like Rancher's own caches)
	inf := dynamicinformer.NewFilteredDynamicInformer(s.dyn, s.widgetsGVR(), s.ns, 0, cache.Indexers{}, nil).Informer()
	added := make(chan string, 16)
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			added <- u.GetName()
		}
	}}); err != nil {
		return err
	}
	ictx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	go inf.RunWithContext(ictx)
	syncCtx, syncCancel := context.WithTimeout(c.ctx, s.opts.SyncTimeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		c.failf("dynamic informer on widgets not synced")
	}

	w, err := res.Watch(c.ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	if _, err := res.Create(c.ctx, s.widget("w2", 1), metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := res.Patch(c.ctx, "w2", types.MergePatchType, []byte(`{"spec":{"size":2}}`), metav1.PatchOptions{}); err != nil {
		return err
	}
	if err := res.Delete(c.ctx, "w2", metav1.DeleteOptions{}); err != nil {
		return err
	}
	var events []string
	timeout := time.After(s.opts.SyncTimeout)
loop:
	for len(events) < 3 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				break loop
			}
			name := ""
			if u, ok := ev.Object.(*unstructured.Unstructured); ok {
				name = u.GetName()
				c.expect(u.GetKind() == "Widget", "watch event object kind %q", u.GetKind())
			}
			events = append(events, string(ev.Type)+" "+name)
			if ev.Type == watch.Error {
				break loop
			}
		case <-timeout:
			break loop
		}
	}
	c.record("watch", events)
	c.expect(strings.Join(events, ";") == "ADDED w2;MODIFIED w2;DELETED w2", "watch events %v", events)
	select {
	case <-added:
	case <-time.After(s.opts.SyncTimeout):
		c.failf("dynamic informer saw no ADDED")
	}
	return nil
}

func (s *kubeSuite) checkCRDTable(c *kubeCheck) error {
	res := s.dyn.Resource(s.widgetsGVR()).Namespace(s.ns)
	if _, err := res.Create(c.ctx, s.widget("w3", 7), metav1.CreateOptions{}); err != nil {
		return err
	}
	t := s.getTable(c, "widgets table", "/apis/"+s.crdGroup()+"/v1/namespaces/"+s.ns+"/widgets", []string{"Name", "Size", "Phase", "Age"})
	rows := kubeAnyList(t["rows"])
	c.expect(len(rows) >= 1, "widgets table has no rows")
	return nil
}
