package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rancherTestServer is an in-process stand-in serving the management API
// over plain HTTP (TLS and tunnels are not what these tests are about).
type rancherTestServer struct {
	t     *testing.T
	s     *Standin
	r     *rancherServer
	http  *httptest.Server
	token string
}

func newRancherTestServer(t *testing.T, opts rancherOptions) *rancherTestServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newStandin(ctx, serveOptions{})
	if err := s.loadState(""); err != nil {
		t.Fatal(err)
	}
	r := rancherFor(s)
	opts.downstream = false
	r.opts = opts
	mux := s.rancherMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	r.start()
	r.routes(mux)
	return &rancherTestServer{t: t, s: s, r: r, http: srv, token: r.apiToken()}
}

func (ts *rancherTestServer) do(method, path, body string, auth bool) (int, map[string]any, string) {
	ts.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = ts.http.URL + path
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+ts.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	return resp.StatusCode, doc, string(raw)
}

// eventually polls fn until it holds.
func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testOptions() rancherOptions {
	o := defaultRancherOptions()
	o.controllerDelay = 100 * time.Millisecond
	return o
}

func TestManagementAPIAuth(t *testing.T) {
	ts := newRancherTestServer(t, testOptions())
	code, _, body := ts.do("GET", "/v3/clusters", "", false)
	if code != 401 || strings.TrimSpace(body) != `{"type":"error","status":"401","message":"must authenticate"}` {
		t.Fatalf("unauthenticated: %d %s", code, body)
	}
	if code, _, _ := ts.do("GET", "/v3/clusters", "", true); code != 200 {
		t.Fatalf("authenticated: %d", code)
	}
	if code, _, _ := ts.do("POST", "/v1/provisioning.cattle.io.clusters", `{}`, false); code != 401 {
		t.Fatalf("v1 unauthenticated: %d", code)
	}
}

func TestProvisioningClusterImportFlow(t *testing.T) {
	ts := newRancherTestServer(t, testOptions())
	create := `{"type":"provisioning.cattle.io.cluster","metadata":{"namespace":"fleet-default","name":"one",` +
		`"labels":{"scaleagent/created":"true"},"annotations":{"scaleagent/owner":"me"}},"spec":{}}`
	code, doc, body := ts.do("POST", "/v1/provisioning.cattle.io.clusters", create, true)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if _, ok := doc["status"].(map[string]any)["clusterName"]; ok {
		t.Fatal("clusterName must appear asynchronously")
	}
	if code, doc, _ := ts.do("POST", "/v1/provisioning.cattle.io.clusters", create, true); code != 409 || doc["code"] != "AlreadyExists" {
		t.Fatalf("duplicate: %d %v", code, doc)
	}
	var id string
	eventually(t, "status.clusterName", func() bool {
		_, doc, _ := ts.do("GET", "/v1/provisioning.cattle.io.clusters/fleet-default/one", "", true)
		id, _ = doc["status"].(map[string]any)["clusterName"].(string)
		return id != ""
	})
	if !strings.HasPrefix(id, "c-m-") || len(id) != len("c-m-")+8 {
		t.Fatalf("bad management id %q", id)
	}
	_, doc, _ = ts.do("GET", "/v1/provisioning.cattle.io.clusters/fleet-default/one", "", true)
	meta := doc["metadata"].(map[string]any)
	if meta["annotations"].(map[string]any)["scaleagent/owner"] != "me" || meta["labels"].(map[string]any)["scaleagent/created"] != "true" {
		t.Fatalf("client metadata lost: %v", meta)
	}

	var manifestURL, token string
	eventually(t, "manifestUrl", func() bool {
		_, doc, _ := ts.do("GET", "/v3/clusterregistrationtokens?clusterId="+id, "", true)
		data, _ := doc["data"].([]any)
		if len(data) != 1 {
			return false
		}
		crt := data[0].(map[string]any)
		manifestURL, _ = crt["manifestUrl"].(string)
		token, _ = crt["token"].(string)
		return manifestURL != "" && crt["name"] == "default-token"
	})
	if len(token) != 54 || !strings.HasSuffix(manifestURL, "/v3/import/"+token+"_"+id+".yaml") {
		t.Fatalf("token %q manifestUrl %q", token, manifestURL)
	}
	code, _, manifest := ts.do("GET", manifestURL, "", false)
	if code != 200 || !strings.Contains(manifest, "cattle-credentials-") || strings.Contains(manifest, "CATTLE_FEATURES") ||
		!strings.Contains(manifest, ts.s.CAChecksum()) {
		t.Fatalf("import manifest: %d\n%s", code, manifest)
	}
	if code, _, body := ts.do("GET", "/v3/import/"+strings.Repeat("x", 54)+"_"+id+".yaml", "", false); code != 400 || body != "cluster not found or invalid token" {
		t.Fatalf("wrong token: %d %q", code, body)
	}

	_, doc, _ = ts.do("GET", "/v3/clusters/"+id, "", true)
	if doc["name"] != "one" || doc["state"] == "" || doc["id"] != id {
		t.Fatalf("v3 view: %v", doc)
	}
	eventually(t, "pending", func() bool {
		_, doc, _ := ts.do("GET", "/v3/clusters/"+id, "", true)
		return doc["state"] == "pending"
	})

	if code, _, body := ts.do("DELETE", "/v1/provisioning.cattle.io.clusters/fleet-default/one", "", true); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _, _ := ts.do("GET", "/v3/clusters/"+id, "", true); code != 404 {
		t.Fatalf("deleted cluster still there: %d", code)
	}
	if _, known := ts.s.clusterByToken(token); known {
		t.Fatal("a deleted cluster's token still works")
	}
}

func TestV3ClustersPagination(t *testing.T) {
	ts := newRancherTestServer(t, testOptions())
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		code, doc, body := ts.do("POST", "/v3/clusters", `{"type":"cluster","name":"`+name+`"}`, true)
		if code != 201 || !strings.HasPrefix(doc["id"].(string), "c-") || len(doc["id"].(string)) != 7 {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
	}
	if code, doc, _ := ts.do("POST", "/v3/clusters", `{"type":"cluster","name":"A"}`, true); code != 422 || doc["code"] != "NotUnique" {
		t.Fatalf("duplicate name: %d %v", code, doc)
	}
	seen := map[string]bool{}
	path := "/v3/clusters?limit=2"
	pages := 0
	for path != "" {
		pages++
		code, doc, body := ts.do("GET", path, "", true)
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		p := doc["pagination"].(map[string]any)
		if p["total"].(float64) != 5 || p["limit"].(float64) != 2 {
			t.Fatalf("pagination %v", p)
		}
		for _, item := range doc["data"].([]any) {
			c := item.(map[string]any)
			if seen[c["id"].(string)] {
				t.Fatalf("%s listed twice", c["id"])
			}
			seen[c["id"].(string)] = true
			for _, key := range []string{"state", "transitioning", "transitioningMessage", "conditions", "name"} {
				if _, ok := c[key]; !ok {
					t.Fatalf("cluster without %s: %v", key, c)
				}
			}
		}
		path, _ = p["next"].(string)
	}
	if pages != 3 || len(seen) != 5 {
		t.Fatalf("%d pages, %d clusters", pages, len(seen))
	}
	_, doc, _ := ts.do("GET", "/v3/clusters?name=c", "", true)
	if data := doc["data"].([]any); len(data) != 1 || data[0].(map[string]any)["name"] != "c" {
		t.Fatalf("filter: %v", doc["data"])
	}
	// Rancher mirrors each legacy cluster as a provisioning cluster.
	_, doc, _ = ts.do("GET", "/v1/provisioning.cattle.io.clusters", "", true)
	if doc["count"].(float64) != 5 {
		t.Fatalf("v1 mirrors: %v", doc["count"])
	}
}
