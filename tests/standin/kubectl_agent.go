package main

// The agent (re)deploy Rancher performs with kubectl through the tunnel:
// apply the import manifest, then the "redeployed" manifest (new
// credentials Secret, CATTLE_FEATURES added: a strategic-merge patch of the
// Deployment), then read back what a user would look at.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// KubectlAgentOptions are the inputs of kubectlAgentSequence.
type KubectlAgentOptions struct {
	// ImportManifest and RedeployManifest are files (see
	// tests/fixtures/agent-manifests/).
	ImportManifest   string
	RedeployManifest string
	// Validate is kubectl's --validate (default "strict", kubectl's
	// default).
	Validate string
}

// KubectlAgentStep is one kubectl run of the sequence with its verdict.
type KubectlAgentStep struct {
	Name   string        `json:"name"`
	Result KubectlResult `json:"result"`
	Ok     bool          `json:"ok"`
	Detail string        `json:"detail,omitempty"`
	// Output is stdout normalised for diffing (ages and generated names
	// masked).
	Output string `json:"output"`
}

// kubectlAgentSequence applies the import manifest, applies the redeployed
// manifest (twice) and reads the result back, checking that the second
// apply patched the Deployment (CATTLE_FEATURES present, new credential
// name) and created the new Secret. It stops at the first kubectl failure;
// outputs that differ from a real server's are reported in the steps and
// in the returned error, after the whole sequence ran.
func kubectlAgentSequence(ctx context.Context, target KubectlTarget, opts KubectlAgentOptions) ([]KubectlAgentStep, error) {
	validate := opts.Validate
	if validate == "" {
		validate = "strict"
	}
	var steps []KubectlAgentStep
	var failed []string
	// run stops the sequence only when kubectl fails; an output that does
	// not match expectations is recorded and the sequence goes on.
	run := func(name string, check func(out string) error, args ...string) error {
		res, err := runKubectl(ctx, target, args...)
		if err != nil {
			return err
		}
		st := KubectlAgentStep{Name: name, Result: res, Ok: res.ExitCode == 0, Output: kubectlNormaliseOutput(res.Stdout)}
		if err := res.Err(); err != nil {
			st.Detail = err.Error()
		} else if check != nil {
			if err := check(res.Stdout); err != nil {
				st.Ok = false
				st.Detail = err.Error()
			}
		}
		steps = append(steps, st)
		if !st.Ok {
			failed = append(failed, name+": "+st.Detail)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("%s: %s", name, st.Detail)
		}
		return nil
	}
	// each wanted line is "<object> <verb>[|<verb>…]"
	expectLines := func(want ...string) func(string) error {
		return func(out string) error {
			var missing []string
			for _, w := range want {
				obj, verbs, _ := strings.Cut(w, " ")
				found := false
				for _, v := range strings.Split(verbs, "|") {
					if strings.Contains(out, obj+" "+v+"\n") {
						found = true
					}
				}
				if !found {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("output lacks %q", missing)
			}
			return nil
		}
	}
	// On a fresh real cluster everything is "created"; a cluster where the
	// agent runs already (a fake seeded with the import manifest) answers
	// "configured" or "unchanged". Either way every object must be applied.
	any := "created|configured|unchanged"
	if err := run("apply import manifest", expectLines(
		"clusterrole.rbac.authorization.k8s.io/proxy-clusterrole-kubeapiserver "+any,
		"clusterrolebinding.rbac.authorization.k8s.io/proxy-role-binding-kubernetes-master "+any,
		"namespace/cattle-system "+any,
		"serviceaccount/cattle "+any,
		"clusterrolebinding.rbac.authorization.k8s.io/cattle-admin-binding "+any,
		"clusterrole.rbac.authorization.k8s.io/cattle-admin "+any,
		"secret/cattle-credentials-b17e9d492b "+any,
		"deployment.apps/cattle-cluster-agent "+any,
		"service/cattle-cluster-agent "+any,
	), "apply", "-f", opts.ImportManifest, "--validate="+validate); err != nil {
		return steps, err
	}
	if err := run("apply redeployed manifest", expectLines(
		"clusterrole.rbac.authorization.k8s.io/proxy-clusterrole-kubeapiserver unchanged",
		"namespace/cattle-system unchanged",
		"serviceaccount/cattle unchanged",
		"secret/cattle-credentials-cb43af441f created",
		"deployment.apps/cattle-cluster-agent configured",
		"service/cattle-cluster-agent unchanged",
	), "apply", "-f", opts.RedeployManifest, "--validate="+validate); err != nil {
		return steps, err
	}
	// A real server drops the manifest's empty env values (value: ""), so
	// kubectl's three-way diff re-sends them and reports the Deployment
	// "configured" on every apply (Rancher's recording shows that PATCH too).
	if err := run("apply redeployed manifest again", expectLines(
		"secret/cattle-credentials-cb43af441f unchanged",
		"deployment.apps/cattle-cluster-agent configured",
	), "apply", "-f", opts.RedeployManifest, "--validate="+validate); err != nil {
		return steps, err
	}
	if err := run("read back the deployment", func(out string) error {
		var d struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
				Generation  int64             `json:"generation"`
			} `json:"metadata"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name string `json:"name"`
							Env  []struct {
								Name  string `json:"name"`
								Value string `json:"value"`
							} `json:"env"`
						} `json:"containers"`
						Volumes []struct {
							Secret struct {
								SecretName string `json:"secretName"`
							} `json:"secret"`
						} `json:"volumes"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			return err
		}
		env := map[string]string{}
		var order []string
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				env[e.Name] = e.Value
				order = append(order, e.Name)
			}
		}
		var problems []string
		if !strings.Contains(env["CATTLE_FEATURES"], "multi-cluster-management-agent=true") {
			problems = append(problems, "CATTLE_FEATURES not patched in")
		}
		if env["CATTLE_CREDENTIAL_NAME"] != "cattle-credentials-cb43af441f" {
			problems = append(problems, "CATTLE_CREDENTIAL_NAME "+env["CATTLE_CREDENTIAL_NAME"])
		}
		if len(order) == 0 || order[0] != "CATTLE_FEATURES" {
			problems = append(problems, fmt.Sprintf("env order %v: kubectl's $setElementOrder puts CATTLE_FEATURES first", order))
		}
		if vs := d.Spec.Template.Spec.Volumes; len(vs) != 1 || vs[0].Secret.SecretName != "cattle-credentials-cb43af441f" {
			problems = append(problems, fmt.Sprintf("volumes %+v", vs))
		}
		if d.Metadata.Generation != 2 {
			problems = append(problems, fmt.Sprintf("generation %d, want 2", d.Metadata.Generation))
		}
		if !strings.Contains(d.Metadata.Annotations["kubectl.kubernetes.io/last-applied-configuration"], "CATTLE_FEATURES") {
			problems = append(problems, "last-applied-configuration not updated")
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	}, "get", "deployment", "-n", "cattle-system", "cattle-cluster-agent", "-o", "json"); err != nil {
		return steps, err
	}
	if err := run("get nodes,pods -A", nil, "get", "nodes,pods", "-A"); err != nil {
		return steps, err
	}
	if err := run("get agent objects", nil, "get", "deployment,service,secret,serviceaccount", "-n", "cattle-system", "-o", "name"); err != nil {
		return steps, err
	}
	if len(failed) > 0 {
		return steps, errors.New(strings.Join(failed, "; "))
	}
	return steps, nil
}

var (
	kubectlReAge     = regexp.MustCompile(`\b\d+(\.\d+)?(s|m|h|d|y)(\d+(s|m|h|d))?\b`)
	kubectlReGenPod  = regexp.MustCompile(`\b(cattle-cluster-agent)-[a-z0-9]{8,10}-[a-z0-9]{5}\b`)
	kubectlReSpaces  = regexp.MustCompile(` {2,}`)
	kubectlReRunName = regexp.MustCompile(`\bks-[0-9a-f]{6}\b`)
)

// kubectlNormaliseOutput masks what differs between runs and servers in
// kubectl's human output: ages, generated pod names, column padding.
func kubectlNormaliseOutput(s string) string {
	var obj map[string]any
	if json.Unmarshal([]byte(s), &obj) == nil {
		// JSON (-o json): uids, versions and times masked; the status is a
		// controller's business and left out
		delete(obj, "status")
		if md, ok := obj["metadata"].(map[string]any); ok {
			if ann, ok := md["annotations"].(map[string]any); ok {
				delete(ann, "deployment.kubernetes.io/revision")
			}
		}
		if b, err := kubeMarshalStable(newKubeNormaliser("").value(obj)); err == nil {
			return string(b)
		}
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		l = kubectlReGenPod.ReplaceAllString(l, "$1-<gen>")
		l = kubectlReAge.ReplaceAllString(l, "<age>")
		l = kubectlReRunName.ReplaceAllString(l, "ks-<run>")
		lines[i] = kubectlReSpaces.ReplaceAllString(strings.TrimRight(l, " "), "  ")
	}
	return strings.Join(lines, "\n")
}

func init() {
	register("kubectl-agent", kubectlAgentMain)
}

// kubectlAgentMain: `standin kubectl-agent --server … --token … --ca-file …
// --import … --redeploy …` runs kubectlAgentSequence and prints a JSON
// report.
func kubectlAgentMain(args []string) error {
	fs := flag.NewFlagSet("kubectl-agent", flag.ContinueOnError)
	server := fs.String("server", "", "API server URL (required)")
	token := fs.String("token", "", "bearer token (required)")
	caFile := fs.String("ca-file", "", "PEM CA bundle (required unless --insecure)")
	insecure := fs.Bool("insecure", false, "skip TLS verification")
	serverName := fs.String("tls-server-name", "", "name/IP the serving certificate must match")
	dialAddr := fs.String("dial", "", "reach the server through a loopback forwarder that dials this host:port (emulates the tunnel path)")
	as := fs.String("as", "", "Impersonate-User")
	asGroups := fs.String("as-group", "", "comma-separated Impersonate-Group values")
	asExtra := fs.String("as-extra", "", "Impersonate-Extra: key=v1|v2;key2=v3")
	grant := fs.Bool("grant-admin", false, "before applying, bind the --as user to cluster-admin (globaladmin-<user>, as Rancher does), using the token without impersonation")
	importM := fs.String("import", "tests/fixtures/agent-manifests/import-v2.14.4.yaml", "import manifest")
	redeployM := fs.String("redeploy", "tests/fixtures/agent-manifests/redeployed-v2.14.4.yaml", "redeployed manifest")
	validate := fs.String("validate", "strict", "kubectl --validate")
	out := fs.String("out", "", "write the normalised outputs (reference format) to this file")
	timeout := fs.Duration("timeout", 3*time.Minute, "overall timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" || *token == "" {
		return errors.New("--server and --token are required")
	}
	target := KubectlTarget{Server: *server, Token: *token, TLSServerName: *serverName, Insecure: *insecure}
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		target.CAData = b
	}
	if *dialAddr != "" {
		addr := *dialAddr
		target.Dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *grant && *as != "" {
		res, err := runKubectl(ctx, target, "create", "clusterrolebinding", "globaladmin-"+*as, "--clusterrole=cluster-admin", "--user="+*as)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 && !strings.Contains(res.Stderr, "AlreadyExists") && !strings.Contains(res.Stderr, "already exists") {
			return res.Err()
		}
	}
	target.ImpersonateUser = *as
	target.ImpersonateGroups = kubeSplitList(*asGroups)
	if *asExtra != "" {
		target.ImpersonateExtra = map[string][]string{}
		for _, kv := range strings.Split(*asExtra, ";") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("--as-extra %q: want key=value", kv)
			}
			target.ImpersonateExtra[k] = strings.Split(v, "|")
		}
	}
	steps, seqErr := kubectlAgentSequence(ctx, target, KubectlAgentOptions{ImportManifest: *importM, RedeployManifest: *redeployM, Validate: *validate})
	b, err := kubeMarshalStable(steps)
	if err != nil {
		return err
	}
	if _, err := os.Stdout.Write(b); err != nil {
		return err
	}
	if *out != "" {
		var b strings.Builder
		for _, st := range steps {
			fmt.Fprintf(&b, "### %s: kubectl %s (exit %d)\n%s\n", st.Name, strings.Join(kubectlDisplayArgs(st.Result.Args), " "), st.Result.ExitCode, strings.TrimRight(st.Output, "\n"))
			fmt.Fprintf(&b, "#### requests\n%s\n\n", strings.Join(kubectlNormaliseRequests(st.Result.Requests), "\n"))
		}
		if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	for _, st := range steps {
		status := "ok"
		if !st.Ok {
			status = "FAIL " + st.Detail
		}
		fmt.Fprintf(os.Stderr, "%-32s %6dms %s\n", st.Name, st.Result.Duration.Milliseconds(), status)
	}
	return seqErr
}

// kubectlNormaliseRequests masks generated names in request lines.
func kubectlNormaliseRequests(in []string) []string {
	out := make([]string, len(in))
	for i, l := range in {
		out[i] = kubectlReRunName.ReplaceAllString(kubectlReGenPod.ReplaceAllString(l, "$1-<gen>"), "ks-<run>")
	}
	return out
}

// kubectlDisplayArgs shortens manifest paths to their file names.
func kubectlDisplayArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.Contains(a, "/") && (strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".json")) {
			a = filepath.Base(a)
		}
		out[i] = a
	}
	return out
}
