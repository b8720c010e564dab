package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Informer modes. client-go 0.35 reflectors use watch-list
// (sendInitialEvents) whenever the WatchListClient feature gate is on,
// which is the default. The gate is process-global (an env var read once,
// or ReplaceFeatureGates), so the classic LIST+WATCH mode is selected per
// informer instead: client-go disables watch-list for a reflector whose
// client reports IsWatchListSemanticsUnSupported() == true.
const (
	kubeModeWatchList = "watchlist"
	kubeModeListWatch = "listwatch"
)

// kubeNoWatchList wraps a clientset so that informers built from it use
// LIST+WATCH, as Rancher up to 2.13 (client-go < 0.35) does.
type kubeNoWatchList struct{ kubernetes.Interface }

func (kubeNoWatchList) IsWatchListSemanticsUnSupported() bool { return true }

type kubeNoWatchListDynamic struct{ dynamic.Interface }

func (kubeNoWatchListDynamic) IsWatchListSemanticsUnSupported() bool { return true }

var kubeAPIServicesGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// The informers Rancher opens on every imported cluster
// (rancher-server-side.md §8.2).
var kubeRancherInformers = []string{
	"namespaces", "nodes", "limitranges", "resourcequotas", "clusterroles", "clusterrolebindings",
	"roles", "rolebindings", "apiservices", "impersonation-secrets", "impersonation-serviceaccounts", "stv-aggregation-secret",
}

type kubeInformerEvent struct {
	informer, typ, name string
	deleting            bool
}

type kubeInformerSet struct {
	mode      string
	cancel    context.CancelFunc
	informers map[string]cache.SharedIndexInformer
	regs      map[string]cache.ResourceEventHandlerRegistration
	mu        sync.Mutex
	events    []kubeInformerEvent
	synced    bool
	filter    func(name string) bool
}

func (s *kubeSuite) informerChecks() []kubeCheckDef {
	var defs []kubeCheckDef
	for _, mode := range []string{kubeModeWatchList, kubeModeListWatch} {
		set := &kubeInformerSet{mode: mode}
		defs = append(defs,
			kubeCheckDef{"informers/" + mode + "/sync", kubeLevelRancher, func(c *kubeCheck) error { return s.checkInformerSync(c, set) }},
			kubeCheckDef{"informers/" + mode + "/events", kubeLevelRancher, func(c *kubeCheck) error { return s.checkInformerEvents(c, set) }},
		)
	}
	return defs
}

func (set *kubeInformerSet) add(informer, typ string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if !set.filter(m.GetName()) {
		return
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	if !set.synced {
		return
	}
	set.events = append(set.events, kubeInformerEvent{informer: informer, typ: typ, name: m.GetName(), deleting: m.GetDeletionTimestamp() != nil})
}

// seen returns the event types an informer delivered for name, with
// consecutive repeats collapsed.
func (set *kubeInformerSet) seen(informer, name string) []string {
	set.mu.Lock()
	defer set.mu.Unlock()
	var out []string
	for _, e := range set.events {
		if e.informer == informer && e.name == name {
			if len(out) == 0 || out[len(out)-1] != e.typ {
				out = append(out, e.typ)
			}
		}
	}
	return out
}

func (set *kubeInformerSet) waitFor(ctx context.Context, informer, name, typ string, timeout time.Duration) error {
	err := kubePoll(ctx, 10*time.Millisecond, timeout, func() (bool, error) {
		for _, t := range set.seen(informer, name) {
			if t == typ {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s informer: no %s for %s within %s (saw %v)", informer, typ, name, timeout, set.seen(informer, name))
	}
	return nil
}

func (s *kubeSuite) checkInformerSync(c *kubeCheck, set *kubeInformerSet) error {
	modePrefix := s.prefix + "-" + set.mode
	set.filter = func(name string) bool {
		return strings.HasPrefix(name, modePrefix) || name == "stv-aggregation" || strings.Contains(name, "."+modePrefix+".")
	}
	var client kubernetes.Interface = s.cs
	var dyn dynamic.Interface = s.dyn
	if set.mode == kubeModeListWatch {
		client = kubeNoWatchList{s.cs}
		dyn = kubeNoWatchListDynamic{s.dyn}
	} else if !clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient) {
		return fmt.Errorf("client-go feature gate WatchListClient is off in this process (KUBE_FEATURE_WatchListClient?); watch-list cannot be tested")
	}
	all := informers.NewSharedInformerFactory(client, 0)
	imp := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("cattle-impersonation-system"))
	stv := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.namespace=cattle-system,metadata.name=stv-aggregation"
	}))
	set.informers = map[string]cache.SharedIndexInformer{
		"namespaces":                    all.Core().V1().Namespaces().Informer(),
		"nodes":                         all.Core().V1().Nodes().Informer(),
		"limitranges":                   all.Core().V1().LimitRanges().Informer(),
		"resourcequotas":                all.Core().V1().ResourceQuotas().Informer(),
		"clusterroles":                  all.Rbac().V1().ClusterRoles().Informer(),
		"clusterrolebindings":           all.Rbac().V1().ClusterRoleBindings().Informer(),
		"roles":                         all.Rbac().V1().Roles().Informer(),
		"rolebindings":                  all.Rbac().V1().RoleBindings().Informer(),
		"apiservices":                   dynamicinformer.NewFilteredDynamicInformer(dyn, kubeAPIServicesGVR, "", 0, cache.Indexers{}, nil).Informer(),
		"impersonation-secrets":         imp.Core().V1().Secrets().Informer(),
		"impersonation-serviceaccounts": imp.Core().V1().ServiceAccounts().Informer(),
		"stv-aggregation-secret":        stv.Core().V1().Secrets().Informer(),
	}
	set.regs = map[string]cache.ResourceEventHandlerRegistration{}
	for name, inf := range set.informers {
		name := name
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { set.add(name, "ADDED", obj) },
			UpdateFunc: func(_, obj any) { set.add(name, "MODIFIED", obj) },
			DeleteFunc: func(obj any) { set.add(name, "DELETED", obj) },
		})
		if err != nil {
			return err
		}
		set.regs[name] = reg
	}
	// The informers outlive this check (the events check uses them); their
	// requests are recorded under this check until it ends.
	ictx, cancel := context.WithCancel(context.WithoutCancel(c.ctx))
	set.cancel = cancel
	s.onCleanup(func(context.Context) { cancel() })
	for _, inf := range set.informers {
		go inf.RunWithContext(ictx)
	}
	start := time.Now()
	syncCtx, syncCancel := context.WithTimeout(c.ctx, s.opts.SyncTimeout)
	defer syncCancel()
	var unsynced []string
	for _, name := range kubeRancherInformers {
		reg := set.regs[name]
		if !cache.WaitForCacheSync(syncCtx.Done(), set.informers[name].HasSynced, reg.HasSynced) {
			unsynced = append(unsynced, name)
		}
	}
	took := time.Since(start)
	set.mu.Lock()
	set.synced = true
	set.mu.Unlock()
	if len(unsynced) > 0 {
		return fmt.Errorf("not synced within %s: %v", s.opts.SyncTimeout, unsynced)
	}
	s.logf("     informers (%s) synced in %s", set.mode, took.Round(time.Millisecond))

	// What the reflectors sent: watch-list must be served as such (no LIST
	// fallback), list+watch must list first.
	byPath := map[string][]KubeHTTPExchange{}
	for _, ex := range s.rec.snapshot(c.res.Name) {
		byPath[ex.Path] = append(byPath[ex.Path], ex)
	}
	shapes := map[string]string{}
	for path, exs := range byPath {
		first := exs[0]
		isWatch := strings.Contains("&"+first.Query+"&", "&watch=true&")
		isWatchList := isWatch && strings.Contains(first.Query, "sendInitialEvents=true")
		shape := "list"
		if isWatchList {
			shape = "watch-list"
		} else if isWatch {
			shape = "watch"
		}
		shapes[path] = shape
		switch set.mode {
		case kubeModeWatchList:
			c.expect(isWatchList, "%s: first request %s?%s (HTTP %d), want a watch-list", path, first.Method, first.Query, first.Status)
			for _, ex := range exs {
				if !strings.Contains("&"+ex.Query+"&", "&watch=true&") {
					c.failf("%s: fell back to LIST (%s)", path, ex.Query)
					break
				}
			}
		case kubeModeListWatch:
			c.expect(!isWatch, "%s: first request %s?%s, want a LIST", path, first.Method, first.Query)
		}
		for _, ex := range exs {
			c.expect(ex.Status == 200, "%s?%s: HTTP %d", path, ex.Query, ex.Status)
		}
	}
	c.expect(len(byPath) == len(kubeRancherInformers), "requests went to %d paths, want %d", len(byPath), len(kubeRancherInformers))
	c.record("first request per path", shapes)
	return nil
}

// kubeInformerWrite is one object the events check creates, updates and
// deletes while the informers watch.
type kubeInformerWrite struct {
	informer string
	name     string
	create   func(ctx context.Context) error
	update   func(ctx context.Context) error
	delete   func(ctx context.Context) error
	// preexisting: the object was there before (stv-aggregation on a fake
	// that seeds it): updated twice instead of created and deleted.
	preexisting bool
}

func (s *kubeSuite) checkInformerEvents(c *kubeCheck, set *kubeInformerSet) error {
	if set.cancel == nil {
		return fmt.Errorf("informers not started")
	}
	defer set.cancel()
	p := s.prefix + "-" + set.mode
	label := func(ctx context.Context, patch func(ctx context.Context, data []byte) error) error {
		return patch(ctx, []byte(`{"metadata":{"labels":{"scaleagent.test/touched":"yes"}}}`))
	}
	core := s.cs.CoreV1()
	rbac := s.cs.RbacV1()
	mp := types.MergePatchType
	writes := []kubeInformerWrite{
		{informer: "namespaces", name: p + "-ns",
			create: func(ctx context.Context) error {
				_, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p + "-ns"}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := core.Namespaces().Patch(ctx, p+"-ns", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error { return core.Namespaces().Delete(ctx, p+"-ns", metav1.DeleteOptions{}) }},
		{informer: "nodes", name: p + "-node",
			create: func(ctx context.Context) error {
				_, err := core.Nodes().Create(ctx, s.newNode(p+"-node"), metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := core.Nodes().Patch(ctx, p+"-node", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error { return core.Nodes().Delete(ctx, p+"-node", metav1.DeleteOptions{}) }},
		{informer: "limitranges", name: p + "-lr",
			create: func(ctx context.Context) error {
				_, err := core.LimitRanges(s.ns).Create(ctx, &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: p + "-lr"},
					Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer}}}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := core.LimitRanges(s.ns).Patch(ctx, p+"-lr", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return core.LimitRanges(s.ns).Delete(ctx, p+"-lr", metav1.DeleteOptions{})
			}},
		{informer: "resourcequotas", name: p + "-rq",
			create: func(ctx context.Context) error {
				_, err := core.ResourceQuotas(s.ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: p + "-rq"},
					Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceConfigMaps: kubeQty("1000")}}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := core.ResourceQuotas(s.ns).Patch(ctx, p+"-rq", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return core.ResourceQuotas(s.ns).Delete(ctx, p+"-rq", metav1.DeleteOptions{})
			}},
		{informer: "clusterroles", name: p + "-cr",
			create: func(ctx context.Context) error {
				_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: p + "-cr"},
					Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := rbac.ClusterRoles().Patch(ctx, p+"-cr", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return rbac.ClusterRoles().Delete(ctx, p+"-cr", metav1.DeleteOptions{})
			}},
		{informer: "clusterrolebindings", name: p + "-crb",
			create: func(ctx context.Context) error {
				_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: p + "-crb"},
					RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: p + "-cr"},
					Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "u-" + s.run}}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := rbac.ClusterRoleBindings().Patch(ctx, p+"-crb", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return rbac.ClusterRoleBindings().Delete(ctx, p+"-crb", metav1.DeleteOptions{})
			}},
		{informer: "roles", name: p + "-role",
			create: func(ctx context.Context) error {
				_, err := rbac.Roles(s.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: p + "-role"},
					Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := rbac.Roles(s.ns).Patch(ctx, p+"-role", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return rbac.Roles(s.ns).Delete(ctx, p+"-role", metav1.DeleteOptions{})
			}},
		{informer: "rolebindings", name: p + "-rb",
			create: func(ctx context.Context) error {
				_, err := rbac.RoleBindings(s.ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: p + "-rb"},
					RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: p + "-role"},
					Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "u-" + s.run}}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := rbac.RoleBindings(s.ns).Patch(ctx, p+"-rb", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return rbac.RoleBindings(s.ns).Delete(ctx, p+"-rb", metav1.DeleteOptions{})
			}},
		s.apiServiceWrite(p),
		s.secretWrite("impersonation-secrets", "cattle-impersonation-system", p+"-sec"),
		{informer: "impersonation-serviceaccounts", name: p + "-sa",
			create: func(ctx context.Context) error {
				_, err := core.ServiceAccounts("cattle-impersonation-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: p + "-sa"}}, metav1.CreateOptions{})
				return err
			},
			update: func(ctx context.Context) error {
				return label(ctx, func(ctx context.Context, b []byte) error {
					_, err := core.ServiceAccounts("cattle-impersonation-system").Patch(ctx, p+"-sa", mp, b, metav1.PatchOptions{})
					return err
				})
			},
			delete: func(ctx context.Context) error {
				return core.ServiceAccounts("cattle-impersonation-system").Delete(ctx, p+"-sa", metav1.DeleteOptions{})
			}},
	}
	stvWrite := s.secretWrite("stv-aggregation-secret", "cattle-system", "stv-aggregation")
	if existing, err := core.Secrets("cattle-system").Get(c.ctx, "stv-aggregation", metav1.GetOptions{}); err == nil {
		// seeded by the server: touch it twice, restore it
		stvWrite.preexisting = true
		orig := existing.Annotations["scaleagent.test/touched"]
		stvWrite.create = func(ctx context.Context) error {
			_, err := core.Secrets("cattle-system").Patch(ctx, "stv-aggregation", mp, []byte(`{"metadata":{"annotations":{"scaleagent.test/touched":"`+p+`"}}}`), metav1.PatchOptions{})
			return err
		}
		stvWrite.delete = func(ctx context.Context) error {
			restore := "null"
			if orig != "" {
				restore = `"` + orig + `"`
			}
			_, err := core.Secrets("cattle-system").Patch(ctx, "stv-aggregation", mp, []byte(`{"metadata":{"annotations":{"scaleagent.test/touched":`+restore+`}}}`), metav1.PatchOptions{})
			return err
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get cattle-system/stv-aggregation: %w", err)
	}
	writes = append(writes, stvWrite)
	// decoys that a correctly scoped informer must not see
	decoys := []kubeInformerWrite{
		s.secretWrite("", "cattle-system", p+"-decoy"),
		s.secretWrite("", s.ns, p+"-decoy"),
	}

	nsTimeout := s.opts.NamespaceDeleteTimeout
	var wg sync.WaitGroup
	for _, w := range append(writes, decoys...) {
		w := w
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := c.ctx
			step := func(what string, fn func(context.Context) error, typ string, timeout time.Duration) bool {
				if err := fn(ctx); err != nil {
					c.failf("%s %s: %v", what, w.name, err)
					return false
				}
				if w.informer == "" {
					return true
				}
				if err := set.waitFor(ctx, w.informer, w.name, typ, timeout); err != nil {
					c.failf("%s", err)
					return false
				}
				return true
			}
			if w.preexisting {
				if step("update", w.create, "MODIFIED", s.opts.SyncTimeout) {
					step("restore", w.delete, "MODIFIED", s.opts.SyncTimeout)
				}
				return
			}
			if !step("create", w.create, "ADDED", s.opts.SyncTimeout) {
				return
			}
			s.onCleanup(func(ctx context.Context) { _ = w.delete(ctx) })
			if w.update != nil && !step("update", w.update, "MODIFIED", s.opts.SyncTimeout) {
				return
			}
			timeout := s.opts.SyncTimeout
			if w.informer == "namespaces" {
				timeout = nsTimeout // needs the namespace controller
			}
			step("delete", w.delete, "DELETED", timeout)
		}()
	}
	wg.Wait()
	// let stray events arrive before checking the decoys
	time.Sleep(200 * time.Millisecond)
	seen := map[string][]string{}
	for _, w := range writes {
		seen[w.informer] = set.seen(w.informer, w.name)
	}
	for _, d := range decoys {
		for _, inf := range []string{"impersonation-secrets", "stv-aggregation-secret"} {
			if got := set.seen(inf, d.name); len(got) > 0 {
				c.failf("%s informer saw %s/%s (%v): selector or namespace not applied", inf, "", d.name, got)
			}
		}
	}
	c.record("events per informer", seen)
	return nil
}

func kubeQty(s string) resource.Quantity { return resource.MustParse(s) }

func (s *kubeSuite) secretWrite(informer, ns, name string) kubeInformerWrite {
	secrets := s.cs.CoreV1().Secrets(ns)
	return kubeInformerWrite{
		informer: informer, name: name,
		create: func(ctx context.Context) error {
			_, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{kubeRunLabel: s.run}},
				Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}}, metav1.CreateOptions{})
			return err
		},
		update: func(ctx context.Context) error {
			_, err := secrets.Patch(ctx, name, types.MergePatchType, []byte(`{"data":{"k2":"djI="}}`), metav1.PatchOptions{})
			return err
		},
		delete: func(ctx context.Context) error {
			err := secrets.Delete(ctx, name, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		},
	}
}

// apiServiceWrite registers a local APIService (no backing service) for a
// group nobody serves, then removes it.
func (s *kubeSuite) apiServiceWrite(p string) kubeInformerWrite {
	group := p + ".scaleagent.test"
	name := "v1." + group
	res := s.dyn.Resource(kubeAPIServicesGVR)
	return kubeInformerWrite{
		informer: "apiservices", name: name,
		create: func(ctx context.Context) error {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
				"metadata": map[string]any{"name": name, "labels": map[string]any{kubeRunLabel: s.run}},
				"spec":     map[string]any{"group": group, "version": "v1", "groupPriorityMinimum": int64(100), "versionPriority": int64(10)},
			}}
			_, err := res.Create(ctx, obj, metav1.CreateOptions{})
			return err
		},
		update: func(ctx context.Context) error {
			_, err := res.Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"labels":{"scaleagent.test/touched":"yes"}}}`), metav1.PatchOptions{})
			return err
		},
		delete: func(ctx context.Context) error {
			err := res.Delete(ctx, name, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		},
	}
}

func kubeSortStrings(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}
