package main

// The twelve informers Rancher opens on every imported cluster
// (rancher-server-side §8.2), with the request shapes of lasso and
// client-go: LIST limit=500 (resourceVersion "0" rewritten to ""), watches
// with allowWatchBookmarks and a 5-10 minute timeoutSeconds, and on 2.14
// (client-go 0.35) a watch-list first (sendInitialEvents=true, ended by the
// k8s.io/initial-events-end bookmark). Each records whether it synced and
// what it asked.

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// impersonationNamespace is where Rancher keeps impersonation accounts.
const impersonationNamespace = "cattle-impersonation-system"

// stvAggregationSelector is the cavalidator's field selector.
const stvAggregationSelector = "metadata.namespace=cattle-system,metadata.name=stv-aggregation"

type rancherInformerSpec struct {
	name          string
	gv            schema.GroupVersion
	resource      string
	namespace     string
	fieldSelector string
	newObj        func() runtime.Object
	newList       func() runtime.Object
}

var rancherInformerSpecs = []rancherInformerSpec{
	{name: "namespaces", gv: corev1.SchemeGroupVersion, resource: "namespaces",
		newObj: func() runtime.Object { return &corev1.Namespace{} }, newList: func() runtime.Object { return &corev1.NamespaceList{} }},
	{name: "nodes", gv: corev1.SchemeGroupVersion, resource: "nodes",
		newObj: func() runtime.Object { return &corev1.Node{} }, newList: func() runtime.Object { return &corev1.NodeList{} }},
	{name: "limitranges", gv: corev1.SchemeGroupVersion, resource: "limitranges",
		newObj: func() runtime.Object { return &corev1.LimitRange{} }, newList: func() runtime.Object { return &corev1.LimitRangeList{} }},
	{name: "resourcequotas", gv: corev1.SchemeGroupVersion, resource: "resourcequotas",
		newObj: func() runtime.Object { return &corev1.ResourceQuota{} }, newList: func() runtime.Object { return &corev1.ResourceQuotaList{} }},
	{name: "clusterroles", gv: rbacv1.SchemeGroupVersion, resource: "clusterroles",
		newObj: func() runtime.Object { return &rbacv1.ClusterRole{} }, newList: func() runtime.Object { return &rbacv1.ClusterRoleList{} }},
	{name: "clusterrolebindings", gv: rbacv1.SchemeGroupVersion, resource: "clusterrolebindings",
		newObj: func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }, newList: func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} }},
	{name: "roles", gv: rbacv1.SchemeGroupVersion, resource: "roles",
		newObj: func() runtime.Object { return &rbacv1.Role{} }, newList: func() runtime.Object { return &rbacv1.RoleList{} }},
	{name: "rolebindings", gv: rbacv1.SchemeGroupVersion, resource: "rolebindings",
		newObj: func() runtime.Object { return &rbacv1.RoleBinding{} }, newList: func() runtime.Object { return &rbacv1.RoleBindingList{} }},
	{name: "apiservices", gv: apiregistrationV1, resource: "apiservices",
		newObj: func() runtime.Object { return &rancherAPIService{} }, newList: func() runtime.Object { return &rancherAPIServiceList{} }},
	{name: "impersonation-secrets", gv: corev1.SchemeGroupVersion, resource: "secrets", namespace: impersonationNamespace,
		newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} }},
	{name: "impersonation-serviceaccounts", gv: corev1.SchemeGroupVersion, resource: "serviceaccounts", namespace: impersonationNamespace,
		newObj: func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} }},
	{name: "stv-aggregation-secret", gv: corev1.SchemeGroupVersion, resource: "secrets", fieldSelector: stvAggregationSelector,
		newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} }},
}

// informerStats is what one informer did.
type informerStats struct {
	Name             string    `json:"name"`
	Path             string    `json:"path"`
	Synced           bool      `json:"synced"`
	SyncedAt         time.Time `json:"syncedAt,omitzero"`
	Items            int       `json:"items"`
	Lists            int       `json:"lists"`
	Watches          int       `json:"watches"`
	WatchLists       int       `json:"watchLists"`
	InitialEventsEnd int       `json:"initialEventsEnd"`
	Events           int       `json:"events"`
	Errors           int       `json:"errors"`
	LastError        string    `json:"lastError,omitempty"`
	LastErrorAt      time.Time `json:"lastErrorAt,omitzero"`
	LastRequest      string    `json:"lastRequest,omitempty"`
	LastRequestAt    time.Time `json:"lastRequestAt,omitzero"`
	ResourceVersion  string    `json:"resourceVersion,omitempty"`
}

type rancherInformer struct {
	spec     rancherInformerSpec
	client   rest.Interface
	informer cache.SharedIndexInformer
	noWL     bool

	mu    sync.Mutex
	stats informerStats
}

type rancherInformers struct {
	rc     *rancherCluster
	byName map[string]*rancherInformer
	list   []*rancherInformer
}

func newRancherInformers(rc *rancherCluster, cfg *rest.Config) (*rancherInformers, error) {
	clients := map[schema.GroupVersion]rest.Interface{}
	out := &rancherInformers{rc: rc, byName: map[string]*rancherInformer{}}
	for _, spec := range rancherInformerSpecs {
		client := clients[spec.gv]
		if client == nil {
			c := rest.CopyConfig(cfg)
			gv := spec.gv
			c.GroupVersion = &gv
			c.APIPath = "/apis"
			if gv.Group == "" {
				c.APIPath = "/api"
			}
			c.NegotiatedSerializer = rancherCodecs.WithoutConversion()
			rc, err := rest.RESTClientFor(c)
			if err != nil {
				return nil, err
			}
			client = rc
			clients[spec.gv] = client
		}
		inf := &rancherInformer{spec: spec, client: client, noWL: !rc.opts().version.watchList()}
		inf.stats.Name = spec.name
		inf.stats.Path = informerPath(spec)
		inf.informer = cache.NewSharedIndexInformerWithOptions(inf, spec.newObj(), cache.SharedIndexInformerOptions{
			Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		})
		out.byName[spec.name] = inf
		out.list = append(out.list, inf)
	}
	return out, nil
}

func informerPath(spec rancherInformerSpec) string {
	p := "/api/"
	if spec.gv.Group != "" {
		p = "/apis/" + spec.gv.Group + "/"
	}
	p += spec.gv.Version + "/"
	if spec.namespace != "" {
		p += "namespaces/" + spec.namespace + "/"
	}
	p += spec.resource
	if spec.fieldSelector != "" {
		p += "?fieldSelector=" + spec.fieldSelector
	}
	return p
}

// IsWatchListSemanticsUnSupported turns client-go's watch-list off for
// the 2.11 emulation (client-go 0.32 never used it).
func (inf *rancherInformer) IsWatchListSemanticsUnSupported() bool { return inf.noWL }

func (inf *rancherInformer) request(opts *metav1.ListOptions) *rest.Request {
	if inf.spec.fieldSelector != "" {
		opts.FieldSelector = inf.spec.fieldSelector
	}
	return inf.client.Get().
		NamespaceIfScoped(inf.spec.namespace, inf.spec.namespace != "").
		Resource(inf.spec.resource).
		VersionedParams(opts, metav1.ParameterCodec)
}

func (inf *rancherInformer) List(opts metav1.ListOptions) (runtime.Object, error) {
	return inf.ListWithContext(context.Background(), opts)
}

func (inf *rancherInformer) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return inf.WatchWithContext(context.Background(), opts)
}

// ListWithContext is lasso's list: resourceVersion "0" becomes "" (a
// consistent read).
func (inf *rancherInformer) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	if opts.ResourceVersion == "0" {
		opts.ResourceVersion = ""
	}
	list := inf.spec.newList()
	req := inf.request(&opts)
	inf.note(func(s *informerStats) {
		s.Lists++
		s.LastRequest = req.URL().RequestURI()
		s.LastRequestAt = time.Now().UTC()
	})
	err := req.Do(ctx).Into(list)
	inf.noteErr(err)
	if err == nil {
		if lm, merr := meta.ListAccessor(list); merr == nil {
			inf.note(func(s *informerStats) { s.ResourceVersion = lm.GetResourceVersion() })
		}
	}
	return list, err
}

// WatchWithContext is a typed client's watch (the watch's timeout is also
// the request's).
func (inf *rancherInformer) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	watchList := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	req := inf.request(&opts).Timeout(timeout)
	inf.note(func(s *informerStats) {
		s.Watches++
		if watchList {
			s.WatchLists++
		}
		s.LastRequest = req.URL().RequestURI()
		s.LastRequestAt = time.Now().UTC()
	})
	w, err := req.Watch(ctx)
	inf.noteErr(err)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
		switch ev.Type {
		case watch.Bookmark:
			if m, merr := meta.Accessor(ev.Object); merr == nil {
				rv := m.GetResourceVersion()
				end := m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true"
				inf.note(func(s *informerStats) {
					s.ResourceVersion = rv
					if end {
						s.InitialEventsEnd++
					}
				})
			}
		case watch.Error:
			inf.noteErr(errorFromWatch(ev.Object))
		default:
			inf.note(func(s *informerStats) { s.Events++ })
		}
		return ev, true
	}), nil
}

func errorFromWatch(obj runtime.Object) error {
	if st, ok := obj.(*metav1.Status); ok {
		return &watchStatusError{st.Message}
	}
	return &watchStatusError{"watch error event"}
}

type watchStatusError struct{ msg string }

func (e *watchStatusError) Error() string { return "watch ERROR event: " + e.msg }

func (inf *rancherInformer) note(fn func(s *informerStats)) {
	inf.mu.Lock()
	fn(&inf.stats)
	inf.mu.Unlock()
}

func (inf *rancherInformer) noteErr(err error) {
	if err == nil {
		return
	}
	inf.note(func(s *informerStats) {
		s.Errors++
		s.LastError = err.Error()
		s.LastErrorAt = time.Now().UTC()
	})
}

// store is the informer's cache (Rancher's listers read it).
func (ri *rancherInformers) store(name string) cache.Store {
	return ri.byName[name].informer.GetStore()
}

func (ri *rancherInformers) onEvents(name string, h cache.ResourceEventHandler) {
	_, _ = ri.byName[name].informer.AddEventHandler(h)
}

// start runs every informer until ctx ends.
func (ri *rancherInformers) start(ctx context.Context) {
	for _, inf := range ri.list {
		go inf.informer.RunWithContext(ctx)
	}
}

// waitForSync waits until every informer synced or ctx ends; the sync
// time of each is recorded.
func (ri *rancherInformers) waitForSync(ctx context.Context) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		all := true
		for _, inf := range ri.list {
			if inf.informer.HasSynced() {
				inf.note(func(s *informerStats) {
					if !s.Synced {
						s.Synced = true
						s.SyncedAt = time.Now().UTC()
					}
				})
			} else {
				all = false
			}
		}
		if all {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func (ri *rancherInformers) view() []informerStats {
	out := make([]informerStats, 0, len(ri.list))
	for _, inf := range ri.list {
		inf.mu.Lock()
		s := inf.stats
		inf.mu.Unlock()
		s.Items = len(inf.informer.GetStore().ListKeys())
		out = append(out, s)
	}
	return out
}

// allSynced reports whether every informer synced.
func (ri *rancherInformers) allSynced() bool {
	for _, inf := range ri.list {
		if !inf.informer.HasSynced() {
			return false
		}
	}
	return true
}
