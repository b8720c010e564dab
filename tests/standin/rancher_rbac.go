package main

// The writes Rancher's per-cluster controllers make (rancher-server-side
// §8.3) and the handlers on informer events that drive them:
//   - namespace-auth & co.: finalizer controller.cattle.io/namespace-auth,
//     the lifecycle and cattle.io/status annotations, project assignment
//     (field.cattle.io/projectId) and no-default-sa-token on system
//     namespaces, each its own PUT, retried after a 409 with a fresh GET;
//     the finalizer is taken off again when a namespace is deleted;
//   - GlobalAdminsSynced: ClusterRoleBinding globaladmin-<admin> ->
//     cluster-admin;
//   - the creator's and the system user's cluster-owner bindings, and the
//     project roles and bindings;
//   - node syncer / stats (node count, capacity) and the cavalidator
//     (AgentTlsStrictCheck from Secret cattle-system/stv-aggregation).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

const (
	namespaceAuthFinalizer = "controller.cattle.io/namespace-auth"
	annCreateNamespaceAuth = "lifecycle.cattle.io/create.namespace-auth"
	annCattleStatus        = "cattle.io/status"
	annProjectID           = "field.cattle.io/projectId"
	annNoDefaultSAToken    = "management.cattle.io/no-default-sa-token"
)

// rancherSystemNamespaces are assigned to the System project (the
// system-namespaces setting, as far as an imported cluster has them).
var rancherSystemNamespaces = []string{
	"kube-system", "kube-public", "kube-node-lease", "cattle-system",
	impersonationNamespace, "cattle-fleet-system", "cattle-fleet-local-system",
}

// rbacStats counts the writes.
type rbacStats struct {
	NamespaceUpdates   int    `json:"namespaceUpdates"`
	NamespaceConflicts int    `json:"namespaceConflicts"`
	FinalizersRemoved  int    `json:"finalizersRemoved"`
	Creates            int    `json:"creates"`
	AlreadyExisted     int    `json:"alreadyExisted"`
	Updates            int    `json:"updates"`
	Lists              int    `json:"lists"`
	Errors             int    `json:"errors"`
	LastError          string `json:"lastError,omitempty"`
	GlobalAdminsSynced bool   `json:"globalAdminsSynced"`
	Nodes              int    `json:"nodes"`
}

type rancherRBAC struct {
	uc    *rancherUserControllers
	queue workqueue.TypedRateLimitingInterface[string]

	mu    sync.Mutex
	stats rbacStats
	// listed remembers the namespaces whose project-scoped secrets were
	// listed (2.14).
	listed map[string]bool
}

func newRancherRBAC(uc *rancherUserControllers) *rancherRBAC {
	r := &rancherRBAC{
		uc:     uc,
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		listed: map[string]bool{},
	}
	inf := uc.informers
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	inf.onEvents("namespaces", cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	nodes := func(any) { r.syncNodes() }
	inf.onEvents("nodes", cache.ResourceEventHandlerFuncs{
		AddFunc:    nodes,
		UpdateFunc: func(_, obj any) { nodes(obj) },
		DeleteFunc: nodes,
	})
	stv := func(obj any) {
		if s, ok := obj.(*corev1.Secret); ok {
			r.caValidator(s)
		}
	}
	inf.onEvents("stv-aggregation-secret", cache.ResourceEventHandlerFuncs{
		AddFunc:    stv,
		UpdateFunc: func(_, obj any) { stv(obj) },
	})
	return r
}

func (r *rancherRBAC) note(fn func(s *rbacStats)) {
	r.mu.Lock()
	fn(&r.stats)
	r.mu.Unlock()
}

func (r *rancherRBAC) noteErr(what string, err error) {
	if err == nil {
		return
	}
	r.note(func(s *rbacStats) {
		s.Errors++
		s.LastError = what + ": " + err.Error()
	})
}

func (r *rancherRBAC) view() rbacStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// start runs the controllers once the caches synced (lasso starts its
// workers after WaitForCacheSync).
func (r *rancherRBAC) start(ctx context.Context) {
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	r.syncNodes()
	go r.namespaceWorker(ctx)
	go r.clusterRBAC(ctx)
}

func (r *rancherRBAC) rc() *rancherCluster { return r.uc.rc }

// syncNodes is the node syncer and stats aggregator.
func (r *rancherRBAC) syncNodes() {
	if !r.uc.informers.byName["nodes"].informer.HasSynced() {
		return
	}
	capacity, allocatable := map[string]resource.Quantity{}, map[string]resource.Quantity{}
	count := 0
	for _, obj := range r.uc.informers.store("nodes").List() {
		n, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		count++
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
			if q, ok := n.Status.Capacity[res]; ok {
				sum := capacity[string(res)]
				sum.Add(q)
				capacity[string(res)] = sum
			}
			if q, ok := n.Status.Allocatable[res]; ok {
				sum := allocatable[string(res)]
				sum.Add(q)
				allocatable[string(res)] = sum
			}
		}
	}
	r.note(func(s *rbacStats) { s.Nodes = count })
	str := func(m map[string]resource.Quantity) map[string]string {
		if len(m) == 0 {
			return nil
		}
		out := map[string]string{}
		for k, q := range m {
			out[k] = q.String()
		}
		return out
	}
	r.rc().setNodes(count, str(capacity), str(allocatable))
}

// caValidator sets AgentTlsStrictCheck from the stv-aggregation Secret.
func (r *rancherRBAC) caValidator(s *corev1.Secret) {
	if s.DeletionTimestamp != nil {
		return
	}
	status := statusUnknown
	switch {
	case string(s.Data["CATTLE_CACERTS_VALID"]) == "true" && len(s.Data["ca.crt"]) > 0:
		status = statusTrue
	case string(s.Data["CATTLE_CACERTS_VALID"]) == "false":
		status = statusFalse
	}
	r.rc().update(func(rec *mgmtRecord, now time.Time) bool {
		if rec.Conditions.status(condAgentTLSStrictCheck) == status {
			return false
		}
		return rec.Conditions.setStatus(now, condAgentTLSStrictCheck, status)
	})
}

func (r *rancherRBAC) namespaceWorker(ctx context.Context) {
	for {
		key, quit := r.queue.Get()
		if quit {
			return
		}
		err := r.syncNamespace(ctx, key)
		if err != nil && ctx.Err() == nil {
			r.noteErr("namespace "+key, err)
			r.queue.AddRateLimited(key)
		} else {
			r.queue.Forget(key)
		}
		r.queue.Done(key)
	}
}

func (r *rancherRBAC) cachedNamespace(name string) *corev1.Namespace {
	obj, ok, err := r.uc.informers.store("namespaces").GetByKey(name)
	if err != nil || !ok {
		return nil
	}
	ns, _ := obj.(*corev1.Namespace)
	return ns
}

// syncNamespace runs the namespace controllers on one namespace.
func (r *rancherRBAC) syncNamespace(ctx context.Context, name string) error {
	ns := r.cachedNamespace(name)
	if ns == nil {
		return nil
	}
	rec := r.rc().snapshot()
	if ns.DeletionTimestamp != nil {
		if !slices.Contains(ns.Finalizers, namespaceAuthFinalizer) {
			return nil
		}
		return r.updateNamespace(ctx, name, func(ns *corev1.Namespace) bool {
			i := slices.Index(ns.Finalizers, namespaceAuthFinalizer)
			if i < 0 {
				return false
			}
			ns.Finalizers = slices.Delete(ns.Finalizers, i, i+1)
			r.note(func(s *rbacStats) { s.FinalizersRemoved++ })
			return true
		})
	}
	if ns.Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	project := ""
	switch {
	case name == "default":
		project = rec.DefaultProject
	case slices.Contains(rancherSystemNamespaces, name):
		project = rec.SystemProject
	}
	steps := []func(ns *corev1.Namespace) bool{
		// namespace-auth's lifecycle create
		func(ns *corev1.Namespace) bool {
			changed := false
			if !slices.Contains(ns.Finalizers, namespaceAuthFinalizer) {
				ns.Finalizers = append(ns.Finalizers, namespaceAuthFinalizer)
				changed = true
			}
			return setAnnotation(&ns.ObjectMeta, annCreateNamespaceAuth, "true") || changed
		},
		// resource quota controller
		func(ns *corev1.Namespace) bool { return addNamespaceCondition(ns, "ResourceQuotaInit") },
	}
	if project != "" {
		steps = append(steps, func(ns *corev1.Namespace) bool {
			changed := setAnnotation(&ns.ObjectMeta, annProjectID, r.rc().id+":"+project)
			if ns.Labels == nil {
				ns.Labels = map[string]string{}
			}
			if ns.Labels[annProjectID] != project {
				ns.Labels[annProjectID] = project
				changed = true
			}
			return changed
		})
	}
	steps = append(steps, func(ns *corev1.Namespace) bool { return addNamespaceCondition(ns, "InitialRolesPopulated") })
	if project == rec.SystemProject && name != "kube-system" && name != "default" {
		steps = append(steps, func(ns *corev1.Namespace) bool {
			return setAnnotation(&ns.ObjectMeta, annNoDefaultSAToken, "true")
		})
	}
	for _, step := range steps {
		if err := r.updateNamespace(ctx, name, step); err != nil {
			return err
		}
	}
	if project != "" {
		if err := r.projectNamespace(ctx, name, project); err != nil {
			return err
		}
	}
	return nil
}

func setAnnotation(m *metav1.ObjectMeta, key, value string) bool {
	if m.Annotations[key] == value {
		return false
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[key] = value
	return true
}

// nsCondition is one entry of the cattle.io/status annotation.
type nsCondition struct {
	Type           string `json:"Type"`
	Status         string `json:"Status"`
	Message        string `json:"Message"`
	LastUpdateTime string `json:"LastUpdateTime"`
}

func addNamespaceCondition(ns *corev1.Namespace, typ string) bool {
	var status struct {
		Conditions []nsCondition `json:"Conditions"`
	}
	if raw := ns.Annotations[annCattleStatus]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &status)
	}
	for _, c := range status.Conditions {
		if c.Type == typ && c.Status == statusTrue {
			return false
		}
	}
	status.Conditions = append(status.Conditions, nsCondition{Type: typ, Status: statusTrue, LastUpdateTime: time.Now().UTC().Format(time.RFC3339)})
	raw, err := json.Marshal(status)
	if err != nil {
		return false
	}
	return setAnnotation(&ns.ObjectMeta, annCattleStatus, string(raw))
}

// updateNamespace applies mutate to the cached namespace and PUTs it; a
// 409 fetches the namespace and tries again, up to 5 times.
func (r *rancherRBAC) updateNamespace(ctx context.Context, name string, mutate func(ns *corev1.Namespace) bool) error {
	cur := r.cachedNamespace(name)
	if cur == nil {
		return nil
	}
	client := r.uc.ctrl.CoreV1().Namespaces()
	for i := 0; i < 5; i++ {
		ns := cur.DeepCopy()
		if !mutate(ns) {
			return nil
		}
		_, err := client.Update(ctx, ns, metav1.UpdateOptions{})
		if err == nil {
			r.note(func(s *rbacStats) { s.NamespaceUpdates++ })
			return nil
		}
		if apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsInvalid(err) {
			// e.g. a finalizer added to a namespace being deleted: the
			// deletion's own event brings the namespace back.
			if fresh, gerr := client.Get(ctx, name, metav1.GetOptions{}); gerr == nil && fresh.DeletionTimestamp != nil {
				return nil
			}
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		r.note(func(s *rbacStats) { s.NamespaceConflicts++ })
		if cur, err = client.Get(ctx, name, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("namespace %s: still conflicting after 5 updates", name)
}

// projectNamespace is what happens to a namespace of a project: the
// creator's project-owner RoleBinding, and (2.14) the project-scoped
// secrets listed.
func (r *rancherRBAC) projectNamespace(ctx context.Context, ns, project string) error {
	rec := r.rc().snapshot()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:      rbacName("rb-", project, rec.CreatorID, "project-owner"),
			Namespace: ns,
			Labels:    map[string]string{"authz.cluster.cattle.io/rtb-owner-updated": project + "_creator-project-owner"},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "project-owner"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: r.rc().srv.adminUserID()}},
	}
	if _, ok, _ := r.uc.informers.store("rolebindings").GetByKey(ns + "/" + rb.Name); !ok {
		_, err := r.uc.ctrl.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
		if err := r.created("rolebinding "+ns+"/"+rb.Name, err); err != nil {
			return err
		}
	}
	if !r.rc().opts().version.watchList() {
		return nil
	}
	r.mu.Lock()
	done := r.listed[ns]
	r.listed[ns] = true
	r.mu.Unlock()
	if done {
		return nil
	}
	_, err := r.uc.ctrl.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "management.cattle.io/project-scoped-secret=" + project})
	r.note(func(s *rbacStats) { s.Lists++ })
	return err
}

// created counts a create; AlreadyExists is not an error.
func (r *rancherRBAC) created(what string, err error) error {
	switch {
	case err == nil:
		r.note(func(s *rbacStats) { s.Creates++ })
		return nil
	case apierrors.IsAlreadyExists(err):
		r.note(func(s *rbacStats) { s.AlreadyExisted++ })
		return nil
	}
	r.noteErr(what, err)
	return err
}

// rbacName is a stable name for a Rancher-made binding.
func rbacName(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p + "\x00"))
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:10]
}

// clusterRBAC runs once the caches synced: GlobalAdminsSynced, the
// cluster-owner role and its bindings, the project roles. Failures are
// retried with a growing delay.
func (r *rancherRBAC) clusterRBAC(ctx context.Context) {
	delay := time.Second
	for ctx.Err() == nil {
		err := r.syncClusterRBAC(ctx)
		if err == nil {
			return
		}
		slog.Debug("rancher: cluster RBAC", "cluster", r.rc().id, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

func (r *rancherRBAC) syncClusterRBAC(ctx context.Context) error {
	rc := r.rc()
	rec := rc.snapshot()
	admin := rc.srv.adminUserID()
	crbs := r.uc.informers.store("clusterrolebindings")
	crs := r.uc.informers.store("clusterroles")
	rbac := r.uc.ctrl.RbacV1()

	// GlobalAdminsSynced: one binding per global admin.
	if !rec.Conditions.isTrue(condGlobalAdminsSynced) {
		name := "globaladmin-" + admin
		if _, ok, _ := crbs.GetByKey(name); !ok {
			_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{
					Name: name,
					Annotations: map[string]string{
						"authz.cluster.cattle.io/globalrole":               "admin",
						"authz.cluster.cattle.io/globalrolebinding":        "globalrolebinding-" + rbacName("", admin)[:5],
						"authz.cluster.cattle.io/admin-globalrole-checked": "true",
					},
				},
				Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: admin}},
				RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
			}, metav1.CreateOptions{})
			if err := r.created("clusterrolebinding "+name, err); err != nil {
				return err
			}
		}
		rc.update(func(rec *mgmtRecord, now time.Time) bool {
			return rec.Conditions.set(now, condGlobalAdminsSynced, statusTrue, "", "")
		})
	}
	r.note(func(s *rbacStats) { s.GlobalAdminsSynced = true })

	// Role templates as ClusterRoles.
	all := []rbacv1.PolicyRule{
		{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		{NonResourceURLs: []string{"*"}, Verbs: []string{"*"}},
	}
	roles := []*rbacv1.ClusterRole{
		{ObjectMeta: metav1.ObjectMeta{Name: "cluster-owner"}, Rules: all},
		{ObjectMeta: metav1.ObjectMeta{Name: "project-owner"}, Rules: all[:1]},
	}
	for _, p := range []string{rec.DefaultProject, rec.SystemProject} {
		roles = append(roles,
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: p + "-namespaces-edit"}, Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"*"}}}},
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: p + "-namespaces-readonly"}, Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}}}},
		)
	}
	for _, role := range roles {
		if _, ok, _ := crs.GetByKey(role.Name); ok {
			continue
		}
		role.Labels = map[string]string{"cattle.io/creator": "norman"}
		_, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
		if err := r.created("clusterrole "+role.Name, err); err != nil {
			return err
		}
	}

	// cluster-owner for the creator and for the cluster's system user (the
	// identity the agent deploy impersonates).
	for _, subject := range []string{admin, rec.SystemUserID} {
		name := rbacName("crb-", rc.id, subject, "cluster-owner")
		if _, ok, _ := crbs.GetByKey(name); ok {
			continue
		}
		_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{
				Name:   name,
				Labels: map[string]string{"authz.cluster.cattle.io/rtb-owner-updated": rc.id + "_cluster-owner"},
			},
			Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: subject}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-owner"},
		}, metav1.CreateOptions{})
		if err := r.created("clusterrolebinding "+name, err); err != nil {
			return err
		}
	}
	if rc.opts().version.watchList() {
		// 2.14 also lists every ClusterRoleBinding once at start.
		_, err := rbac.ClusterRoleBindings().List(ctx, metav1.ListOptions{})
		r.note(func(s *rbacStats) { s.Lists++ })
		if err != nil {
			r.noteErr("list clusterrolebindings", err)
			return err
		}
	}
	// The rtb label sweep Rancher lists at start.
	_, err := rbac.ClusterRoleBindings().List(ctx, metav1.ListOptions{
		LabelSelector: "authz.cluster.cattle.io/rtb-owner-updated,authz.cluster.cattle.io/rtb-owner,authz.cluster.cattle.io/rtb-label-updated",
	})
	r.note(func(s *rbacStats) { s.Lists++ })
	r.noteErr("list clusterrolebindings", err)
	return err
}
