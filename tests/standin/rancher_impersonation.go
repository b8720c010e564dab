package main

// What Rancher's /k8s/clusters/<id> proxy does before it forwards a
// request of a Rancher user (rancher-server-side §9.4): it makes sure the
// downstream has namespace cattle-impersonation-system, ClusterRole,
// ServiceAccount, token Secret and ClusterRoleBinding
// cattle-impersonation-<user>, and forwards with that account's token
// plus Impersonate-* headers. Reads come from the informer caches; the
// Secret create, ServiceAccount update and Secret polls go through the
// typed clientset (protobuf bodies), the rest through the controller
// clients (JSON), as in the recording.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
)

const (
	impersonationLabel   = "authz.cluster.cattle.io/impersonator"
	saSecretLabel        = "cattle.io/service-account.name"
	saSecretRefAnn       = "rancher.io/service-account.secret-ref"
	saSecretAnn          = "kubernetes.io/service-account.name"
	impersonationPrefix  = "cattle-impersonation-"
	tokenPollSteps       = 50
	tokenPollInterval    = 2 * time.Millisecond
	saWaitSteps          = 10
	saWaitInterval       = 200 * time.Millisecond
	impersonationTimeout = 45 * time.Second
)

// rancherUser is a Rancher user as the proxy impersonates it.
type rancherUser struct {
	UID    string
	Groups []string
	// Extra are the Impersonate-Extra-* values in header order.
	Extra map[string][]string
}

// systemUser is the cluster's system account, the identity clusterdeploy's
// kubectl runs as.
func (rc *rancherCluster) systemUser(tokenID string) rancherUser {
	rec := rc.snapshot()
	host := strings.TrimPrefix(rc.srv.s.URL, "https://")
	if _, port, ok := strings.Cut(host, ":"); ok {
		host = "localhost:" + port
	}
	u := rancherUser{
		UID:    rec.SystemUserID,
		Groups: []string{"system:authenticated", "system:cattle:authenticated"},
		Extra: map[string][]string{
			"principalid":    {"system://" + rc.id, "local://" + rec.SystemUserID},
			"requesthost":    {host},
			"requesttokenid": {tokenID},
		},
	}
	if rc.opts().version == rancher211 {
		u.Extra["username"] = []string{"System account for Cluster " + rc.id}
	}
	return u
}

// impersonationRules is the ClusterRole of an impersonation account.
func impersonationRules(u rancherUser) []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{
		{Verbs: []string{"impersonate"}, APIGroups: []string{""}, Resources: []string{"users"}, ResourceNames: []string{u.UID}},
		{Verbs: []string{"impersonate"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"userextras/requesttokenid"}},
		{Verbs: []string{"impersonate"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"userextras/requesthost"}},
	}
	if len(u.Groups) > 0 {
		groups := slices.Clone(u.Groups)
		sort.Strings(groups)
		rules = append(rules, rbacv1.PolicyRule{Verbs: []string{"impersonate"}, APIGroups: []string{""}, Resources: []string{"groups"}, ResourceNames: groups})
	}
	for _, key := range []string{"principalid", "username"} {
		if vals, ok := u.Extra[key]; ok {
			vals = slices.Clone(vals)
			sort.Strings(vals)
			rules = append(rules, rbacv1.PolicyRule{Verbs: []string{"impersonate"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"userextras/" + key}, ResourceNames: vals})
		}
	}
	return rules
}

// impersonationStatus is what the last set-up did.
type impersonationStatus struct {
	Account       string    `json:"account,omitempty"`
	Secret        string    `json:"secret,omitempty"`
	At            time.Time `json:"at,omitzero"`
	Created       []string  `json:"created,omitempty"`
	SecretCreated bool      `json:"secretCreated"`
	SAUpdates     int       `json:"saUpdates"`
	SAConflicts   int       `json:"saConflicts"`
	TokenPolls    int       `json:"tokenPolls"`
	TokenInCreate bool      `json:"tokenInCreateResponse"`
	TokenWaitMs   int64     `json:"tokenWaitMs"`
	SAWaitMs      int64     `json:"saWaitMs"`
	Error         string    `json:"error,omitempty"`
}

// impersonationToken sets up impersonation for u and returns the token of
// its account (impersonator.GetToken).
func (uc *rancherUserControllers) impersonationToken(ctx context.Context, u rancherUser, st *impersonationStatus) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, impersonationTimeout)
	defer cancel()
	*st = impersonationStatus{At: time.Now().UTC()}
	sa, err := uc.impersonationSetup(ctx, u, st)
	if err != nil {
		st.Error = err.Error()
		return "", fmt.Errorf("unable to create impersonator account: error setting up impersonation for user %s: %w", u.UID, err)
	}
	secret, err := uc.ensureSASecret(ctx, sa, st)
	if err != nil {
		st.Error = err.Error()
		return "", fmt.Errorf("unable to create impersonator account: error getting secret: %w", err)
	}
	token := secret.Data[corev1.ServiceAccountTokenKey]
	if len(token) == 0 {
		st.Error = "secret has no token"
		return "", errors.New("unable to create impersonator account: error getting token: invalid secret object")
	}
	st.Account, st.Secret = sa.Name, secret.Name
	return string(token), nil
}

func cachedAs[T any](uc *rancherUserControllers, informer, key string) (T, bool) {
	var zero T
	obj, ok, err := uc.informers.store(informer).GetByKey(key)
	if err != nil || !ok {
		return zero, false
	}
	t, ok := obj.(T)
	return t, ok
}

func (uc *rancherUserControllers) impersonationSetup(ctx context.Context, u rancherUser, st *impersonationStatus) (*corev1.ServiceAccount, error) {
	name := impersonationPrefix + u.UID
	rules := impersonationRules(u)
	rbac := uc.ctrl.RbacV1()

	// checkAndUpdateRole
	var role *rbacv1.ClusterRole
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cached, ok := cachedAs[*rbacv1.ClusterRole](uc, "clusterroles", name)
		if !ok {
			role = nil
			return nil
		}
		role = cached
		if !reflect.DeepEqual(role.Rules, rules) {
			upd := role.DeepCopy()
			upd.Rules = rules
			var err error
			role, err = rbac.ClusterRoles().Update(ctx, upd, metav1.UpdateOptions{})
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	_, haveBinding := cachedAs[*rbacv1.ClusterRoleBinding](uc, "clusterrolebindings", name)
	if role != nil && haveBinding {
		if sa, ok := cachedAs[*corev1.ServiceAccount](uc, "impersonation-serviceaccounts", impersonationNamespace+"/"+name); ok {
			return sa, nil
		}
	}

	// createNamespace
	if _, ok := cachedAs[*corev1.Namespace](uc, "namespaces", impersonationNamespace); !ok {
		_, err := uc.ctrl.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: impersonationNamespace, Labels: map[string]string{impersonationLabel: "true"},
		}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		if err == nil {
			st.Created = append(st.Created, "namespace/"+impersonationNamespace)
		}
	}
	// createRole
	if role == nil {
		if cached, ok := cachedAs[*rbacv1.ClusterRole](uc, "clusterroles", name); ok {
			role = cached
		} else {
			role, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{impersonationLabel: "true"}},
				Rules:      rules,
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				role, err = rbac.ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			} else if err == nil {
				st.Created = append(st.Created, "clusterrole/"+name)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	// createServiceAccount (+ its token secret)
	sa, ok := cachedAs[*corev1.ServiceAccount](uc, "impersonation-serviceaccounts", impersonationNamespace+"/"+name)
	if !ok {
		sa, err = uc.ctrl.CoreV1().ServiceAccounts(impersonationNamespace).Create(ctx, &corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: impersonationNamespace,
				Labels: map[string]string{impersonationLabel: "true"},
				OwnerReferences: []metav1.OwnerReference{{
					Name: role.Name, UID: role.UID, APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole",
				}},
			},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			sa, err = uc.ctrl.CoreV1().ServiceAccounts(impersonationNamespace).Get(ctx, name, metav1.GetOptions{})
		} else if err == nil {
			st.Created = append(st.Created, "serviceaccount/"+name)
		}
		if err != nil {
			return nil, fmt.Errorf("impersonation: error getting service account [%s:%s]: %w", impersonationNamespace, name, err)
		}
	}
	if _, err := uc.ensureSASecret(ctx, sa, st); err != nil {
		return nil, fmt.Errorf("impersonation: error ensuring secret for service account %s: %w", name, err)
	}
	// createRoleBinding
	if _, ok := cachedAs[*rbacv1.ClusterRoleBinding](uc, "clusterrolebindings", name); !ok {
		_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{
				Name:   name,
				Labels: map[string]string{impersonationLabel: "true"},
				OwnerReferences: []metav1.OwnerReference{{
					Name: role.Name, UID: role.UID, APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole",
				}},
			},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		if err == nil {
			st.Created = append(st.Created, "clusterrolebinding/"+name)
		}
	}
	return uc.waitForServiceAccount(ctx, sa, st)
}

// waitForServiceAccount waits (10 x 200 ms) for the account to show up in
// the informer cache with a token in its secret.
func (uc *rancherUserControllers) waitForServiceAccount(ctx context.Context, sa *corev1.ServiceAccount, st *impersonationStatus) (*corev1.ServiceAccount, error) {
	start := time.Now()
	defer func() { st.SAWaitMs = time.Since(start).Milliseconds() }()
	for i := 0; i < saWaitSteps; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(saWaitInterval):
			}
		}
		cached, ok := cachedAs[*corev1.ServiceAccount](uc, "impersonation-serviceaccounts", impersonationNamespace+"/"+sa.Name)
		if !ok {
			continue
		}
		secret, err := uc.saSecret(ctx, sa)
		if err != nil {
			return nil, err
		}
		if secret != nil && len(secret.Data[corev1.ServiceAccountTokenKey]) > 0 {
			return cached, nil
		}
	}
	return nil, fmt.Errorf("failed to get secret for service account: %s/%s, error: timed out waiting for the condition", sa.Namespace, sa.Name)
}

// saSecret finds the token Secret of an account: the one its annotation
// names, else one with its label in the cache (invalid ones are deleted).
func (uc *rancherUserControllers) saSecret(ctx context.Context, sa *corev1.ServiceAccount) (*corev1.Secret, error) {
	secrets := uc.typed.CoreV1().Secrets(sa.Namespace)
	if ref := sa.Annotations[saSecretRefAnn]; ref != "" {
		_, name, _ := strings.Cut(ref, "/")
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return s, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	sel := labels.SelectorFromSet(labels.Set{saSecretLabel: sa.Name})
	var result *corev1.Secret
	for _, obj := range uc.informers.store("impersonation-secrets").List() {
		s, ok := obj.(*corev1.Secret)
		if !ok || s.Namespace != sa.Namespace || !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		if s.Type == corev1.SecretTypeServiceAccountToken && s.Annotations[saSecretAnn] == sa.Name {
			if result == nil {
				result = s
			}
			continue
		}
		_ = secrets.Delete(ctx, s.Name, metav1.DeleteOptions{})
	}
	return result, nil
}

// ensureSASecret is EnsureSecretForServiceAccount: find or create the
// token Secret, annotate the account with it, and poll (50 x 2 ms) until
// the token is filled in.
func (uc *rancherUserControllers) ensureSASecret(ctx context.Context, sa *corev1.ServiceAccount, st *impersonationStatus) (*corev1.Secret, error) {
	ready := func(s *corev1.Secret) bool { return s != nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 }
	if ref := sa.Annotations[saSecretRefAnn]; ref != "" {
		if s, ok := cachedAs[*corev1.Secret](uc, "impersonation-secrets", ref); ok && ready(s) {
			return s, nil
		}
	}
	secrets := uc.typed.CoreV1().Secrets(sa.Namespace)
	secret, err := uc.saSecret(ctx, sa)
	if err != nil {
		return nil, fmt.Errorf("error looking up secret for service account [%s:%s]: %w", sa.Namespace, sa.Name, err)
	}
	if secret == nil {
		secret, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: sa.Name + "-token-",
				Namespace:    sa.Namespace,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "ServiceAccount", Name: sa.Name, UID: sa.UID,
				}},
				Annotations: map[string]string{saSecretAnn: sa.Name},
				Labels:      map[string]string{saSecretLabel: sa.Name},
			},
			Type: corev1.SecretTypeServiceAccountToken,
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("error ensuring secret for service account [%s:%s]: %w", sa.Namespace, sa.Name, err)
		}
		st.SecretCreated = true
		st.TokenInCreate = ready(secret)
		// annotate the account; a conflict rolls the secret back
		upd := sa.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		ref := secret.Namespace + "/" + secret.Name
		if upd.Annotations[saSecretRefAnn] != ref {
			upd.Annotations[saSecretRefAnn] = ref
			st.SAUpdates++
			_, err := uc.typed.CoreV1().ServiceAccounts(sa.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
			if err != nil {
				if !apierrors.IsConflict(err) {
					return nil, err
				}
				st.SAConflicts++
				if err := secrets.Delete(ctx, secret.Name, metav1.DeleteOptions{}); err != nil {
					return nil, fmt.Errorf("deleting optimistically locked secret: %w", err)
				}
				fresh, err := uc.typed.CoreV1().ServiceAccounts(sa.Namespace).Get(ctx, sa.Name, metav1.GetOptions{})
				if err != nil {
					return nil, err
				}
				_, name, _ := strings.Cut(fresh.Annotations[saSecretRefAnn], "/")
				if name == "" {
					return nil, fmt.Errorf("ServiceAccount %s has no %s annotation after a conflict", sa.Name, saSecretRefAnn)
				}
				if secret, err = secrets.Get(ctx, name, metav1.GetOptions{}); err != nil {
					return nil, err
				}
			}
		}
	}
	if ready(secret) {
		return secret, nil
	}
	start := time.Now()
	defer func() { st.TokenWaitMs = time.Since(start).Milliseconds() }()
	for i := 0; i < tokenPollSteps; i++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(tokenPollInterval):
		}
		st.TokenPolls++
		s, err := secrets.Get(ctx, secret.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("error ensuring secret for service account [%s:%s]: %w", sa.Namespace, sa.Name, err)
		}
		if ready(s) {
			return s, nil
		}
	}
	return nil, errors.New("timed out waiting for the condition")
}
