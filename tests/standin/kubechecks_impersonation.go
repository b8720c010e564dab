package main

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

const kubeImpNS = "cattle-impersonation-system"

func (s *kubeSuite) impersonationChecks() []kubeCheckDef {
	return []kubeCheckDef{
		{"impersonation/setup", kubeLevelRancher, s.checkImpersonationSetup},
		{"impersonation/request", kubeLevelRancher, s.checkImpersonatedRequest},
		{"impersonation/whoami", kubeLevelStrict, s.checkImpersonationWhoAmI},
		{"impersonation/forbidden", kubeLevelStrict, s.checkImpersonationForbidden},
		{"impersonation/token-request", kubeLevelRancher, s.checkTokenRequest},
	}
}

// impersonation state carried between the checks.
type kubeImpersonation struct {
	user, sa, secret, token string
}

func (s *kubeSuite) impUser() string { return "u-" + s.prefix }

// checkImpersonationSetup reproduces Rancher's impersonation set-up for a
// user (pkg/impersonation, rancher-server-side.md §9.4), with the typed
// client and so protobuf bodies, as Rancher ≥2.11 sends them.
func (s *kubeSuite) checkImpersonationSetup(c *kubeCheck) error {
	ctx := c.ctx
	user := s.impUser()
	name := "cattle-impersonation-" + user
	s.imp = &kubeImpersonation{user: user, sa: name}

	_, err := s.cs.CoreV1().Namespaces().Create(c.quiet(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeImpNS}}, metav1.CreateOptions{})
	c.expect(err == nil || apierrors.IsAlreadyExists(err), "ensure namespace %s: %v", kubeImpNS, err)

	cr, err := s.cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{kubeRunLabel: s.run}},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}, ResourceNames: []string{user, user + "-nobody"}},
			{APIGroups: []string{""}, Resources: []string{"groups"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"system:authenticated", "system:cattle:authenticated"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"userextras/requesttokenid", "userextras/requesthost", "userextras/principalid", "userextras/username"}, Verbs: []string{"impersonate"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create clusterrole: %w", err)
	}
	s.onCleanup(func(ctx context.Context) { _ = s.cs.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{}) })

	sa, err := s.cs.CoreV1().ServiceAccounts(kubeImpNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{kubeRunLabel: s.run},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: name, UID: cr.UID}},
	}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create serviceaccount: %w", err)
	}
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.CoreV1().ServiceAccounts(kubeImpNS).Delete(ctx, name, metav1.DeleteOptions{})
	})
	c.record("serviceaccount", kubePick(sa, "metadata", "secrets", "automountServiceAccountToken"))

	prefix := name + "-token-"
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    prefix,
			Namespace:       kubeImpNS,
			Labels:          map[string]string{"cattle.io/service-account.name": name, kubeRunLabel: s.run},
			Annotations:     map[string]string{corev1.ServiceAccountNameKey: name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ServiceAccount", Name: name, UID: sa.UID}},
		},
		Type: corev1.SecretTypeServiceAccountToken,
	}
	created, err := s.cs.CoreV1().Secrets(kubeImpNS).Create(ctx, secret, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create token secret: %w", err)
	}
	s.norm.generated(created.Name, prefix)
	s.imp.secret = created.Name
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.CoreV1().Secrets(kubeImpNS).Delete(ctx, created.Name, metav1.DeleteOptions{})
	})
	inCreate := len(created.Data[corev1.ServiceAccountTokenKey]) > 0
	// Rancher polls GET 50 times, 2ms apart; a real cluster's token
	// controller needs longer, so the reference run waits up to 5s.
	polls := 0
	var filled *corev1.Secret = created
	if !inCreate {
		deadline := time.Now().Add(100 * time.Millisecond)
		if s.opts.ReferenceServer {
			deadline = time.Now().Add(5 * time.Second)
		}
		for time.Now().Before(deadline) {
			polls++
			pctx := ctx // the first poll is in the transcript, their number is not
			if polls > 1 {
				pctx = c.quiet()
			}
			got, err := s.cs.CoreV1().Secrets(kubeImpNS).Get(pctx, created.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get token secret: %w", err)
			}
			if len(got.Data[corev1.ServiceAccountTokenKey]) > 0 {
				filled = got
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	token := string(filled.Data[corev1.ServiceAccountTokenKey])
	switch {
	case inCreate:
		c.res.Detail = "data.token filled in the create response"
	case token != "" && s.opts.ReferenceServer:
		c.res.Detail = fmt.Sprintf("data.token filled after %d GET polls (real token controller)", polls)
	case token != "":
		c.failf("data.token empty in the create response, filled after %d GET polls: Rancher gives up after 50 polls 2ms apart", polls)
	default:
		c.failf("data.token never filled (%d GET polls)", polls)
	}
	for _, k := range []string{corev1.ServiceAccountRootCAKey, corev1.ServiceAccountNamespaceKey} {
		c.expect(len(filled.Data[k]) > 0, "token secret lacks data[%s]", k)
	}
	c.expect(string(filled.Data[corev1.ServiceAccountNamespaceKey]) == kubeImpNS, "data.namespace %q", filled.Data[corev1.ServiceAccountNamespaceKey])
	c.record("token secret once filled", kubePick(filled, "metadata", "type", "data"))
	s.imp.token = token

	// Rancher records the secret on the SA (typed update: protobuf body).
	sa.Annotations = map[string]string{"rancher.io/service-account.secret-ref": kubeImpNS + "/" + created.Name}
	if sa, err = s.cs.CoreV1().ServiceAccounts(kubeImpNS).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update serviceaccount: %w", err)
	}
	c.record("serviceaccount updated", kubePick(sa, "metadata"))

	// A second token secret deleted again, as Rancher does after a conflict
	// (protobuf DeleteOptions body).
	extra, err := s.cs.CoreV1().Secrets(kubeImpNS).Create(ctx, secret, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create second token secret: %w", err)
	}
	s.norm.generated(extra.Name, prefix)
	c.expect(extra.Name != created.Name, "generateName produced the same name twice")
	err = s.cs.CoreV1().Secrets(kubeImpNS).Delete(ctx, extra.Name, metav1.DeleteOptions{})
	c.expect(err == nil, "delete second token secret: %v", err)

	_, err = s.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{kubeRunLabel: s.run}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: kubeImpNS}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create clusterrolebinding: %w", err)
	}
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
	})

	// The user's own rights: Rancher's GlobalAdmins binds admins to
	// cluster-admin with globaladmin-<user>.
	gname := "globaladmin-" + user
	_, err = s.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: gname, Labels: map[string]string{kubeRunLabel: s.run}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create %s: %w", gname, err)
	}
	s.onCleanup(func(ctx context.Context) {
		_ = s.cs.RbacV1().ClusterRoleBindings().Delete(ctx, gname, metav1.DeleteOptions{})
	})
	return nil
}

// impersonatingConfig is what Rancher's proxy sends: the SA token plus
// Impersonate-* headers.
func (s *kubeSuite) impersonatingConfig(user string) *rest.Config {
	cfg := rest.CopyConfig(s.cfg)
	cfg.BearerToken, cfg.BearerTokenFile, cfg.Username, cfg.Password = s.imp.token, "", "", ""
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: user,
		Groups:   []string{"system:authenticated", "system:cattle:authenticated"},
		Extra: map[string][]string{
			"principalid":    {"system://c-" + s.run, "local://" + user},
			"requesthost":    {"localhost:10443"},
			"requesttokenid": {"token-" + s.run},
		},
	}
	return cfg
}

func (s *kubeSuite) clientFor(cfg *rest.Config) (kubernetes.Interface, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfigAndClient(cfg, hc)
}

func (s *kubeSuite) needImp() error {
	if s.imp == nil || s.imp.token == "" {
		return fmt.Errorf("impersonation set-up did not complete")
	}
	return nil
}

func (s *kubeSuite) checkImpersonatedRequest(c *kubeCheck) error {
	if err := s.needImp(); err != nil {
		return err
	}
	cs, err := s.clientFor(s.impersonatingConfig(s.imp.user))
	if err != nil {
		return err
	}
	// RBAC changes reach a real authorizer within milliseconds; allow 5s.
	var ns *corev1.Namespace
	err = kubePoll(c.ctx, 50*time.Millisecond, 5*time.Second, func() (bool, error) {
		var err error
		ns, err = cs.CoreV1().Namespaces().Get(c.quiet(), "kube-system", metav1.GetOptions{})
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		_, lastErr := cs.CoreV1().Namespaces().Get(c.ctx, "kube-system", metav1.GetOptions{})
		return fmt.Errorf("impersonated GET kube-system: %v (%v)", err, lastErr)
	}
	c.expect(ns.Name == "kube-system", "got namespace %q", ns.Name)
	// a write as the impersonated user (kubectl apply does these)
	_, err = cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, s.cm(s.name("imp"), nil), metav1.CreateOptions{})
	c.expect(err == nil, "impersonated create: %v", err)
	return nil
}

func (s *kubeSuite) checkImpersonationWhoAmI(c *kubeCheck) error {
	if err := s.needImp(); err != nil {
		return err
	}
	cs, err := s.clientFor(s.impersonatingConfig(s.imp.user))
	if err != nil {
		return err
	}
	ssr, err := cs.AuthenticationV1().SelfSubjectReviews().Create(c.ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("selfsubjectreview: %w", err)
	}
	u := ssr.Status.UserInfo
	c.record("impersonated user", u)
	c.expect(u.Username == s.imp.user, "username %q, want %q", u.Username, s.imp.user)
	c.expect(kubeContains(u.Groups, "system:cattle:authenticated") && kubeContains(u.Groups, "system:authenticated"), "groups %v", u.Groups)
	c.expect(len(u.Extra["principalid"]) == 2 && len(u.Extra["requesthost"]) == 1 && len(u.Extra["requesttokenid"]) == 1, "extra %v", u.Extra)

	// the SA itself
	sacfg := rest.CopyConfig(s.cfg)
	sacfg.BearerToken, sacfg.BearerTokenFile = s.imp.token, ""
	sacs, err := s.clientFor(sacfg)
	if err != nil {
		return err
	}
	ssr, err = sacs.AuthenticationV1().SelfSubjectReviews().Create(c.ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("selfsubjectreview as the service account: %w", err)
	}
	c.record("service account user", ssr.Status.UserInfo)
	want := "system:serviceaccount:" + kubeImpNS + ":" + s.imp.sa
	c.expect(ssr.Status.UserInfo.Username == want, "username %q, want %q", ssr.Status.UserInfo.Username, want)
	return nil
}

func kubeContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *kubeSuite) checkImpersonationForbidden(c *kubeCheck) error {
	if err := s.needImp(); err != nil {
		return err
	}
	// a user the SA may impersonate but who has no rights
	cs, err := s.clientFor(s.impersonatingConfig(s.imp.user + "-nobody"))
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Get(c.ctx, "kube-system", metav1.GetOptions{})
	c.expect(apierrors.IsForbidden(err), "user without rights: %v, want Forbidden", err)
	c.record("user without rights", kubeStatusOf(err))
	// a user the SA may not impersonate
	cs, err = s.clientFor(s.impersonatingConfig("someone-else"))
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Get(c.ctx, "kube-system", metav1.GetOptions{})
	c.expect(apierrors.IsForbidden(err), "impersonating a user not allowed: %v, want Forbidden", err)
	c.record("user the SA may not impersonate", kubeStatusOf(err))
	return nil
}

func (s *kubeSuite) checkTokenRequest(c *kubeCheck) error {
	if s.imp == nil {
		return fmt.Errorf("impersonation set-up did not complete")
	}
	before := time.Now()
	tr, err := s.cs.CoreV1().ServiceAccounts(kubeImpNS).CreateToken(c.ctx, s.imp.sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest: %w", err)
	}
	c.record("TokenRequest", kubePick(tr, "spec", "status"))
	c.expect(tr.Status.Token != "", "empty token")
	exp := tr.Status.ExpirationTimestamp.Sub(before)
	c.expect(exp > 540*time.Second && exp < 660*time.Second, "expires in %s, want ~600s", exp.Round(time.Second))
	c.expect(len(tr.Spec.Audiences) > 0, "spec.audiences not defaulted")

	cfg := rest.CopyConfig(s.cfg)
	cfg.BearerToken, cfg.BearerTokenFile = tr.Status.Token, ""
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	r, err := kubeDoRaw(c.ctx, hc, s.host, "GET", "/apis", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expect(r.Status == 200, "GET /apis with the requested token: HTTP %d", r.Status)

	_, err = s.cs.CoreV1().ServiceAccounts(kubeImpNS).CreateToken(c.ctx, s.name("nosa"), &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	c.expect(apierrors.IsNotFound(err), "TokenRequest for a missing service account: %v, want NotFound", err)
	return nil
}
