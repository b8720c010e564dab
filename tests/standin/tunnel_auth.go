package main

// Tunnel handshake authorisation as Rancher's authorizer chain does it
// (agent-protocol §3.12): first the steve-proxy authorizer
// (Authorization: Bearer stv-cluster-<token>), then the MCM authorizer
// (X-API-Tunnel-Token + X-API-Tunnel-Params). The first that authorises
// wins; otherwise the first error any of them returned becomes a 400 with
// the error text as body, and no error at all a 401 "failed authentication"
// (remotedialer's own handling of the authorizer's answer).

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

const (
	steveKeyPrefix     = "stv-cluster-"
	tunnelTokenHeader  = "X-API-Tunnel-Token"
	tunnelParamsHeader = "X-API-Tunnel-Params"
	maxRejections      = 100
)

// TunnelKind names one of the two websockets an agent opens.
type TunnelKind string

const (
	TunnelMain  TunnelKind = "main"
	TunnelSteve TunnelKind = "steve"
)

// errClusterNotFound is Rancher's text for an unknown registration token.
var errClusterNotFound = errors.New("cluster not found")

// tunnelAttempt carries what the authorizer learned about one handshake
// request to the tunnel handler, through the request context.
type tunnelAttempt struct {
	clusterID     string
	kind          TunnelKind
	paramsChanged bool
}

type tunnelAttemptKey struct{}

func attemptOf(req *http.Request) *tunnelAttempt {
	att, _ := req.Context().Value(tunnelAttemptKey{}).(*tunnelAttempt)
	if att == nil {
		att = &tunnelAttempt{}
	}
	return att
}

// rejection is one refused tunnel handshake, kept for the control API.
type rejection struct {
	At        time.Time `json:"at"`
	ClusterID string    `json:"clusterId,omitempty"`
	Tunnel    string    `json:"tunnel,omitempty"`
	Path      string    `json:"path"`
	Remote    string    `json:"remoteAddr"`
	Code      int       `json:"code"`
	Error     string    `json:"error"`
}

func (s *Standin) authorizeTunnel(req *http.Request) (string, bool, error) {
	att := attemptOf(req)
	var firstErr error
	for _, auth := range []func(*http.Request, *tunnelAttempt) (string, bool, error){
		s.authorizeSteve,
		s.authorizeMain,
	} {
		key, ok, err := auth(req, att)
		if err != nil || !ok {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return key, true, nil
	}
	return "", false, firstErr
}

// authorizeSteve is Rancher's steve-proxy authorizer: an unknown token is
// "not mine", never an error, so it ends in a 401.
func (s *Standin) authorizeSteve(req *http.Request, att *tunnelAttempt) (string, bool, error) {
	auth := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !strings.HasPrefix(auth, steveKeyPrefix) {
		return "", false, nil
	}
	id, ok := s.clusterByToken(strings.TrimPrefix(auth, steveKeyPrefix))
	if !ok {
		return "", false, nil
	}
	att.clusterID, att.kind = id, TunnelSteve
	return steveKeyPrefix + id, true, nil
}

// authorizeMain is Rancher's MCM authorizer for cluster agents.
func (s *Standin) authorizeMain(req *http.Request, att *tunnelAttempt) (string, bool, error) {
	token := req.Header.Get(tunnelTokenHeader)
	if token == "" {
		return "", false, nil
	}
	id, ok := s.clusterByToken(token)
	if !ok {
		return "", false, errClusterNotFound
	}
	att.clusterID, att.kind = id, TunnelMain
	params, err := readTunnelParams(req.Header.Get(tunnelParamsHeader))
	if err != nil {
		return "", false, err
	}
	changed, err := s.recordParams(id, params)
	if err != nil {
		// The cluster was deleted between the lookups.
		return "", false, errClusterNotFound
	}
	att.paramsChanged = changed
	return id, true, nil
}

// readTunnelParams decodes and validates X-API-Tunnel-Params with Rancher's
// readInput rules and error texts. The types are named as Rancher's are
// (input, cluster) so that JSON type errors read the same.
func readTunnelParams(header string) (TunnelParams, error) {
	type cluster struct {
		Address string `json:"address"`
		Token   string `json:"token"`
		CACert  string `json:"caCert"`
	}
	type node struct {
		RequestedHostname string `json:"requestedHostname"`
	}
	type input struct {
		Node        *node    `json:"node"`
		Cluster     *cluster `json:"cluster"`
		NodeVersion int      `json:"nodeVersion"`
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return TunnelParams{}, err
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return TunnelParams{}, err
	}
	switch {
	case in.Node == nil && in.Cluster == nil:
		return TunnelParams{}, errors.New("missing node or cluster registration info")
	case in.Node != nil && in.Node.RequestedHostname == "":
		return TunnelParams{}, errors.New("invalid input, hostname empty")
	case in.Cluster != nil && in.Cluster.Address == "":
		return TunnelParams{}, errors.New("invalid input, address empty")
	case in.Cluster != nil && in.Cluster.Token == "":
		return TunnelParams{}, errors.New("invalid input, token empty")
	case in.Cluster != nil && in.Cluster.CACert == "":
		return TunnelParams{}, errors.New("invalid input, caCert empty")
	case in.Node != nil:
		// Rancher would register an RKE1 node here; no cluster agent does.
		return TunnelParams{}, errors.New("node registration is not simulated by the stand-in")
	}
	return TunnelParams{Address: in.Cluster.Address, Token: in.Cluster.Token, CACert: in.Cluster.CACert}, nil
}

// recordParams stores accepted params and reports whether they were new or
// different, which is when Rancher rewrites the cluster's API endpoint, CA
// and SA token secret.
func (s *Standin) recordParams(id string, p TunnelParams) (bool, error) {
	changed := false
	err := s.WithCluster(id, func(c *Cluster) error {
		if c.Params != nil && *c.Params == p {
			return nil
		}
		if c.Params != nil {
			c.ParamsChanges++
		}
		changed = true
		c.Params = &p
		c.ParamsSetAt = time.Now().UTC()
		return nil
	})
	return changed, err
}

// writeTunnelError is Rancher's tunnel ErrorWriter: log, then status code
// and error text.
func (s *Standin) writeTunnelError(rw http.ResponseWriter, req *http.Request, code int, err error) {
	remote := req.RemoteAddr
	if fwd := req.Header.Get("X-Forwarded-For"); fwd != "" {
		remote = fmt.Sprintf("%s (X-Forwarded-For: %s)", req.RemoteAddr, fwd)
	}
	slog.Warn("Failed to handle tunnel request", "remote", remote, "path", req.URL.Path, "code", code, "error", err)
	att := attemptOf(req)
	r := rejection{
		At:        time.Now().UTC(),
		ClusterID: att.clusterID,
		Tunnel:    string(att.kind),
		Path:      req.URL.Path,
		Remote:    req.RemoteAddr,
		Code:      code,
		Error:     err.Error(),
	}
	s.mu.Lock()
	s.rejections = append(s.rejections, r)
	if len(s.rejections) > maxRejections {
		s.rejections = s.rejections[len(s.rejections)-maxRejections:]
	}
	if c := s.clusters[att.clusterID]; c != nil && att.kind != "" {
		t := c.tunnel(att.kind)
		t.rejected++
		t.lastRejection = &r
	}
	s.mu.Unlock()
	rw.WriteHeader(code)
	rw.Write([]byte(err.Error()))
}
