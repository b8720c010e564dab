package main

// The Rancher URLs the agent side needs before and for its tunnels:
// /ping, the cacerts setting (what run.sh downloads and checksums) and the
// two tunnel paths. The management API lives in other files
// (serveExtensions).

import (
	"net/http"
	"time"
)

func (s *Standin) rancherMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("pong"))
	})
	mux.HandleFunc("GET /cacerts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(s.cacerts))
	})
	mux.HandleFunc("GET /v3/settings/cacerts", s.handleCACertsSetting)
	mux.HandleFunc("/v3/connect", s.serveTunnel)
	mux.HandleFunc("/v3/connect/register", s.serveTunnel)
	return mux
}

// handleCACertsSetting answers like Rancher's norman settings store
// (readable without authentication).
func (s *Standin) handleCACertsSetting(w http.ResponseWriter, r *http.Request) {
	created := s.ca.cert.NotBefore.Add(time.Hour).UTC()
	writeJSON(w, http.StatusOK, map[string]any{
		"actions":    map[string]any{},
		"baseType":   "setting",
		"created":    created.Format(time.RFC3339),
		"createdTS":  created.UnixMilli(),
		"creatorId":  nil,
		"customized": false,
		"default":    "",
		"id":         "cacerts",
		"labels":     map[string]any{},
		"links":      map[string]string{"self": "https://" + r.Host + "/v3/settings/cacerts"},
		"name":       "cacerts",
		"source":     "",
		"type":       "setting",
		"uuid":       "standin-setting-cacerts",
		"value":      s.cacerts,
	})
}
