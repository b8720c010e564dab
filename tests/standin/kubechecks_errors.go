package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func (s *kubeSuite) errorChecks() []kubeCheckDef {
	return []kubeCheckDef{
		{"errors/not-found", kubeLevelRancher, s.checkNotFound},
		{"errors/already-exists", kubeLevelRancher, s.checkAlreadyExists},
		{"errors/invalid", kubeLevelRancher, s.checkInvalid},
		{"errors/bad-request", kubeLevelStrict, s.checkBadRequest},
		{"errors/unknown-path", kubeLevelStrict, s.checkUnknownPath},
		{"errors/method-not-allowed", kubeLevelStrict, s.checkMethodNotAllowed},
		{"errors/unsupported-media-type", kubeLevelStrict, s.checkUnsupportedMediaType},
		{"errors/unauthorized", kubeLevelRancher, s.checkUnauthorized},
	}
}

// expectStatus checks that a raw answer is a metav1.Status with the given
// code and reason, and records it.
func (c *kubeCheck) expectStatus(step string, r kubeRaw, code int, reason metav1.StatusReason) {
	c.record(step, r.summary())
	st, _ := r.JSON().(map[string]any)
	c.expect(r.Status == code, "%s: HTTP %d, want %d", step, r.Status, code)
	c.expect(st["kind"] == "Status" && st["apiVersion"] == "v1", "%s: body is not a v1 Status (kind %v)", step, st["kind"])
	c.expect(fmt.Sprint(st["code"]) == fmt.Sprint(code), "%s: Status code %v", step, st["code"])
	c.expect(st["status"] == "Failure", "%s: Status status %v", step, st["status"])
	if reason != "" {
		c.expect(st["reason"] == string(reason), "%s: reason %v, want %s", step, st["reason"], reason)
	}
}

func (s *kubeSuite) checkNotFound(c *kubeCheck) error {
	missing := s.name("missing")
	_, err := s.cs.CoreV1().ConfigMaps(s.ns).Get(c.ctx, missing, metav1.GetOptions{})
	c.expect(apierrors.IsNotFound(err), "typed get of a missing configmap: %v, want NotFound", err)
	c.record("typed get configmap (protobuf)", kubeStatusOf(err))

	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps/"+missing, kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("GET configmap (json)", r, 404, metav1.StatusReasonNotFound)

	// Rancher 2.14 deletes RBAC objects that do not exist at start-up.
	err = s.cs.RbacV1().ClusterRoleBindings().Delete(c.ctx, missing, metav1.DeleteOptions{})
	c.expect(apierrors.IsNotFound(err), "typed delete of a missing clusterrolebinding: %v, want NotFound", err)
	c.record("typed delete clusterrolebinding", kubeStatusOf(err))
	err = s.cs.RbacV1().ClusterRoles().Delete(c.ctx, missing, metav1.DeleteOptions{})
	c.expect(apierrors.IsNotFound(err), "typed delete of a missing clusterrole: %v, want NotFound", err)

	// A namespaced create in a namespace that does not exist.
	_, err = s.cs.CoreV1().ConfigMaps(s.name("nons")).Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	c.expect(apierrors.IsNotFound(err), "create in a missing namespace: %v, want NotFound", err)
	c.record("create in missing namespace", kubeStatusOf(err))
	return nil
}

func (s *kubeSuite) checkAlreadyExists(c *kubeCheck) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.name("dup"), Namespace: s.ns}, Data: map[string]string{"a": "1"}}
	if _, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, cm, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, cm, metav1.CreateOptions{})
	c.expect(apierrors.IsAlreadyExists(err), "second create: %v, want AlreadyExists", err)
	c.record("typed create again", kubeStatusOf(err))
	body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": cm.Name}})
	r, err := s.raw(c.ctx, "POST", "/api/v1/namespaces/"+s.ns+"/configmaps", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expectStatus("POST again (json)", r, 409, metav1.StatusReasonAlreadyExists)
	return nil
}

func (s *kubeSuite) checkInvalid(c *kubeCheck) error {
	_, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Invalid_Name." + s.run}}, metav1.CreateOptions{})
	c.expect(apierrors.IsInvalid(err), "create with an invalid name: %v, want Invalid", err)
	c.record("typed create invalid name", kubeStatusOf(err))

	body := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + s.name("inv") + `"},"data":{"bad key!":"x"}}`)
	r, err := s.raw(c.ctx, "POST", "/api/v1/namespaces/"+s.ns+"/configmaps", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expectStatus("POST invalid data key (json)", r, 422, metav1.StatusReasonInvalid)

	// Strict field validation rejects unknown fields (kubectl apply sends
	// fieldValidation=Strict).
	body = []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + s.name("strict") + `"},"bogusField":1}`)
	r, err = s.raw(c.ctx, "POST", "/api/v1/namespaces/"+s.ns+"/configmaps?fieldValidation=Strict", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, body)
	if err != nil {
		return err
	}
	c.expectStatus("POST unknown field, fieldValidation=Strict", r, 400, metav1.StatusReasonBadRequest)
	return nil
}

func (s *kubeSuite) checkBadRequest(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "POST", "/api/v1/namespaces/"+s.ns+"/configmaps", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, []byte(`{"apiVersion":"v1","kind":"ConfigMap",`))
	if err != nil {
		return err
	}
	c.expectStatus("POST malformed JSON", r, 400, metav1.StatusReasonBadRequest)
	r, err = s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps?labelSelector=a%3D%3Db%3D%3Dc", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("GET bad labelSelector", r, 400, metav1.StatusReasonBadRequest)
	return nil
}

func (s *kubeSuite) checkUnknownPath(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "GET", "/api/v1/ksnothings", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("GET unknown resource", r, 404, metav1.StatusReasonNotFound)
	r, err = s.raw(c.ctx, "GET", "/apis/nothing.scaleagent.test/v1", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.record("GET unknown group", r.summary())
	c.expect(r.Status == 404, "unknown group: HTTP %d", r.Status)
	r, err = s.raw(c.ctx, "GET", "/apis/k3s.cattle.io/v1", kubeAcceptJSON, nil) // Rancher 2.15 probes this
	if err != nil {
		return err
	}
	c.record("GET /apis/k3s.cattle.io/v1", r.summary())
	c.expect(r.Status == 404, "/apis/k3s.cattle.io/v1: HTTP %d, want 404", r.Status)
	return nil
}

func (s *kubeSuite) checkMethodNotAllowed(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "PUT", "/api/v1/namespaces/"+s.ns+"/configmaps", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, []byte(`{}`))
	if err != nil {
		return err
	}
	c.expectStatus("PUT on a collection", r, 405, metav1.StatusReasonMethodNotAllowed)
	return nil
}

func (s *kubeSuite) checkUnsupportedMediaType(c *kubeCheck) error {
	r, err := s.raw(c.ctx, "PATCH", "/api/v1/namespaces/"+s.ns+"/configmaps/"+s.name("dup"), map[string]string{"Accept": "application/json", "Content-Type": "text/plain"}, []byte(`{}`))
	if err != nil {
		return err
	}
	c.expectStatus("PATCH with text/plain", r, 415, metav1.StatusReasonUnsupportedMediaType)
	return nil
}

// checkUnauthorized: a wrong token is 401 everywhere; no token at all is
// 401 when anonymous authentication is off, and otherwise the anonymous
// user, which may only read /version, /healthz and the like (403 for
// resources), as on most real clusters.
func (s *kubeSuite) checkUnauthorized(c *kubeCheck) error {
	badCfg := rest.AnonymousClientConfig(s.cfg)
	badCfg.BearerToken = "scaleagent-invalid-token-" + s.run
	badHTTP, err := rest.HTTPClientFor(badCfg)
	if err != nil {
		return err
	}
	bad, err := kubernetes.NewForConfigAndClient(badCfg, badHTTP)
	if err != nil {
		return err
	}
	_, err = bad.CoreV1().Namespaces().Get(c.ctx, "kube-system", metav1.GetOptions{})
	c.expect(apierrors.IsUnauthorized(err), "wrong token: %v, want Unauthorized", err)
	c.record("typed get, wrong token", kubeStatusOf(err))
	r, err := kubeDoRaw(c.ctx, badHTTP, s.host, "GET", "/api/v1/namespaces/kube-system", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("GET, wrong token (json)", r, 401, metav1.StatusReasonUnauthorized)
	r, err = kubeDoRaw(c.ctx, badHTTP, s.host, "GET", "/version", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("GET /version, wrong token", r, 401, metav1.StatusReasonUnauthorized)

	anonCfg := rest.AnonymousClientConfig(s.cfg)
	anonHTTP, err := rest.HTTPClientFor(anonCfg)
	if err != nil {
		return err
	}
	r, err = kubeDoRaw(c.ctx, anonHTTP, s.host, "GET", "/api/v1/namespaces/kube-system", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	switch r.Status {
	case http.StatusUnauthorized:
		c.expectStatus("GET, no token", r, 401, metav1.StatusReasonUnauthorized)
	case http.StatusForbidden:
		c.expectStatus("GET, no token (anonymous)", r, 403, metav1.StatusReasonForbidden)
	default:
		c.failf("no token: HTTP %d, want 401 or 403", r.Status)
	}
	return nil
}
