package main

// The test-control API: plain HTTP, JSON in and out, for tests only. It may
// return tokens (to the test); it never logs them.
//
//	GET    /standin/healthz                    {"ok":true,"clusters":N,"liveSessions":{"main":n,"steve":n}}
//	POST   /standin/clusters                   {"id"?,"name"?,"token"?} -> {"id","name","token"}
//	GET    /standin/clusters                   {"clusters":[view...]}
//	GET    /standin/clusters/{id}              view (see Standin.view)
//	DELETE /standin/clusters/{id}              forget it, close its tunnels
//	POST   /standin/clusters/{id}/tokens       {"name"?,"token"?} -> {"name","token"}
//	POST   /standin/clusters/{id}/disconnect   {"tunnel":"main"|"steve"|"both","abort"?:bool} -> {"closed":n}
//	POST   /standin/clusters/{id}/streams      StreamRequest -> StreamResponse
//	POST   /standin/clusters/{id}/steve        SteveRequest -> SteveResponse
//	POST   /standin/clusters/{id}/ping         run the Connected check now -> view.ping
//	GET    /standin/rejections                 {"rejections":[...]} (refused tunnel handshakes)
//	POST   /standin/save                       write the state now
//
// Errors are {"error":"..."} with 400 (bad request), 404 (no such cluster),
// 409 (exists) or 502 (the tunnel could not be used).

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

const maxControlBody = 1 << 20

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeControlError(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	var bad badRequestError
	switch {
	case errors.Is(err, errUnknownCluster):
		code = http.StatusNotFound
	case errors.Is(err, errClusterExists), errors.Is(err, errTokenInUse):
		code = http.StatusConflict
	case errors.As(err, &bad), errors.Is(err, errEmptyTokenValue):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// readBody decodes an optional JSON body into v.
func readBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody))
	if err != nil {
		return badRequestError{err}
	}
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return badRequestError{err}
	}
	return nil
}

func (s *Standin) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /standin/healthz", s.handleHealthz)
	mux.HandleFunc("POST /standin/clusters", s.handleCreateCluster)
	mux.HandleFunc("GET /standin/clusters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"clusters": s.clusterViews()})
	})
	mux.HandleFunc("GET /standin/clusters/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.clusterView(r.PathValue("id"))
		if !ok {
			writeControlError(w, errUnknownCluster)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("DELETE /standin/clusters/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteCluster(r.PathValue("id")); err != nil {
			writeControlError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"deleted": r.PathValue("id")})
	})
	mux.HandleFunc("POST /standin/clusters/{id}/tokens", s.handleAddToken)
	mux.HandleFunc("POST /standin/clusters/{id}/disconnect", s.handleDisconnect)
	mux.HandleFunc("POST /standin/clusters/{id}/streams", s.handleStreams)
	mux.HandleFunc("POST /standin/clusters/{id}/steve", s.handleSteve)
	mux.HandleFunc("POST /standin/clusters/{id}/ping", s.handlePing)
	mux.HandleFunc("GET /standin/rejections", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		list := append([]rejection{}, s.rejections...)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"rejections": list})
	})
	mux.HandleFunc("POST /standin/save", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Flush(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"saved": true})
	})
	for _, ext := range controlExtensions {
		ext(s, mux)
	}
	return mux
}

func (s *Standin) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	live := map[string]int{string(TunnelMain): 0, string(TunnelSteve): 0}
	for _, c := range s.clusters {
		for kind, t := range c.tunnels {
			live[string(kind)] += len(t.live)
		}
	}
	n := len(s.clusters)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "clusters": n, "liveSessions": live})
}

func (s *Standin) handleCreateCluster(w http.ResponseWriter, r *http.Request) {
	var spec ClusterSpec
	if err := readBody(r, &spec); err != nil {
		writeControlError(w, err)
		return
	}
	c, err := s.CreateCluster(spec)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": c.ID, "name": c.Name, "token": c.Tokens[0].Token})
}

func (s *Standin) handleAddToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name  string `json:"name"`
		Token string `json:"token"`
	}
	if err := readBody(r, &body); err != nil {
		writeControlError(w, err)
		return
	}
	if body.Name == "" {
		body.Name = "token-" + randomString(5)
	}
	token, err := s.AddToken(r.PathValue("id"), body.Name, body.Token)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"name": body.Name, "token": token})
}

func (s *Standin) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tunnel string `json:"tunnel"`
		Abort  bool   `json:"abort"`
	}
	if err := readBody(r, &body); err != nil {
		writeControlError(w, err)
		return
	}
	var kinds []TunnelKind
	switch body.Tunnel {
	case "", "both":
	case string(TunnelMain), string(TunnelSteve):
		kinds = []TunnelKind{TunnelKind(body.Tunnel)}
	default:
		writeControlError(w, badRequestError{errors.New(`tunnel must be "main", "steve" or "both"`)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	n, err := s.Disconnect(ctx, r.PathValue("id"), kinds, body.Abort)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"closed": n})
}

func (s *Standin) handleStreams(w http.ResponseWriter, r *http.Request) {
	var req StreamRequest
	if err := readBody(r, &req); err != nil {
		writeControlError(w, err)
		return
	}
	resp, err := s.RunStreams(r.Context(), r.PathValue("id"), req)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Standin) handleSteve(w http.ResponseWriter, r *http.Request) {
	var req SteveRequest
	if err := readBody(r, &req); err != nil {
		writeControlError(w, err)
		return
	}
	id := r.PathValue("id")
	if _, ok := s.Cluster(id); !ok {
		writeControlError(w, errUnknownCluster)
		return
	}
	resp, err := s.steveRequest(r.Context(), id, req)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Standin) handlePing(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := s.Cluster(id); !ok {
		writeControlError(w, errUnknownCluster)
		return
	}
	checked := s.checkConnected(id)
	v, _ := s.clusterView(id)
	writeJSON(w, http.StatusOK, map[string]any{"checked": checked, "ping": v["ping"]})
}
