package main

// The routes of Rancher's management API the stand-in serves, their
// authentication (the API token as a bearer token, or as basic-auth access
// key and secret) and the error bodies of its three API styles: the auth
// filter's, norman's (/v3) and steve's (/v1).

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

const maxAPIBody = 1 << 20

func (r *rancherServer) routes(mux *http.ServeMux) {
	auth := r.authenticated
	mux.HandleFunc("POST /v1/provisioning.cattle.io.clusters", auth(r.handleV1Create))
	mux.HandleFunc("GET /v1/provisioning.cattle.io.clusters", auth(r.handleV1List))
	mux.HandleFunc("GET /v1/provisioning.cattle.io.clusters/{namespace}", auth(r.handleV1List))
	mux.HandleFunc("GET /v1/provisioning.cattle.io.clusters/{namespace}/{name}", auth(r.handleV1Get))
	mux.HandleFunc("DELETE /v1/provisioning.cattle.io.clusters/{namespace}/{name}", auth(r.handleV1Delete))

	mux.HandleFunc("POST /v3/clusters", auth(r.handleV3CreateCluster))
	mux.HandleFunc("GET /v3/clusters", auth(r.handleV3ListClusters))
	mux.HandleFunc("GET /v3/clusters/{id}", auth(r.handleV3GetCluster))
	mux.HandleFunc("DELETE /v3/clusters/{id}", auth(r.handleV3DeleteCluster))
	mux.HandleFunc("GET /v3/clusters/{id}/clusterregistrationtokens", auth(r.handleV3ListTokens))
	for _, p := range []string{"clusterregistrationtokens", "clusterRegistrationTokens"} {
		mux.HandleFunc("GET /v3/"+p, auth(r.handleV3ListTokens))
		mux.HandleFunc("POST /v3/"+p, auth(r.handleV3CreateToken))
		mux.HandleFunc("GET /v3/"+p+"/{id}", auth(r.handleV3GetToken))
	}
	mux.HandleFunc("GET /v3/settings/{name}", r.handleV3Setting)
	mux.HandleFunc("GET /v3/import/{file}", r.handleImport)
}

// authenticated lets a request through with the API token, else answers
// like Rancher's auth filter.
func (r *rancherServer) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if !r.tokenValid(req) {
			writeAuthError(w, http.StatusUnauthorized, "must authenticate")
			return
		}
		next(w, req)
	}
}

func (r *rancherServer) tokenValid(req *http.Request) bool {
	want := r.apiToken()
	got := ""
	h := req.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Bearer "):
		got = strings.TrimPrefix(h, "Bearer ")
	case strings.HasPrefix(h, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
		if err == nil {
			got = string(raw)
		}
	default:
		if c, err := req.Cookie("R_SESS"); err == nil {
			got = c.Value
		}
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// writeAuthError is Rancher's auth filter error (util.ReturnHTTPError).
func writeAuthError(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, struct {
		Type    string `json:"type"`
		Status  string `json:"status"`
		Message string `json:"message"`
	}{"error", strconv.Itoa(code), message})
}

// writeNormanError is a /v3 API error.
func writeNormanError(w http.ResponseWriter, status int, code, message, field string) {
	body := map[string]any{"baseType": "error", "type": "error", "status": status, "code": code, "message": message}
	if field != "" {
		body["fieldName"] = field
	}
	writeJSON(w, status, body)
}

// writeSteveError is a /v1 API error.
func writeSteveError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"type": "error", "links": map[string]any{}, "status": status, "code": code, "message": message})
}

// readAPIBody decodes a JSON request body.
func readAPIBody(req *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(req.Body, maxAPIBody))
	if err != nil {
		return err
	}
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// apiBase is https://<host as the client addressed it>.
func apiBase(req *http.Request) string {
	host := req.Host
	if h := req.Header.Get("X-Forwarded-Host"); h != "" {
		host = h
	}
	scheme := "https"
	if req.TLS == nil {
		scheme = "http"
	}
	if p := req.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + host
}
