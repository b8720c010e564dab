package main

// What Rancher sends through the steve tunnel: the clusterconnected
// controller's `GET http://not-used/ping` every 15 s for every cluster that
// has a steve session (a 200 makes the cluster Connected), and one-off HTTP
// requests like the UI's steve proxy makes (for the control API).

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxPingBody is how much of a /ping answer is kept.
const maxPingBody = 1024

// steveProxyAddress is where Rancher's steve proxy dials; the agent ignores it.
const steveProxyAddress = "127.0.0.1:6080"

type pingStats struct {
	ok, failed int
	lastStatus int
	lastBody   string
	lastError  string
	lastAt     time.Time
	lastOKAt   time.Time
	connected  bool
	checked    bool
}

func (p pingStats) view() map[string]any {
	var connected any
	if p.checked {
		connected = p.connected
	}
	return map[string]any{
		"ok":         p.ok,
		"failed":     p.failed,
		"lastStatus": p.lastStatus,
		"lastBody":   p.lastBody,
		"lastError":  p.lastError,
		"lastAt":     nullTime(p.lastAt),
		"lastOkAt":   nullTime(p.lastOKAt),
		// What Rancher would set the Connected condition to; null before
		// the first check.
		"connected": connected,
	}
}

// runPingLoop is the clusterconnected controller: every interval, check
// every cluster, as Rancher does (sequentially by default, no HTTP timeout
// by default).
func (s *Standin) runPingLoop() {
	if s.opts.pingInterval <= 0 {
		return
	}
	ticker := time.NewTicker(s.opts.pingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
			s.checkAllConnected()
		}
	}
}

func (s *Standin) checkAllConnected() {
	ids := s.ClusterIDs()
	workers := max(s.opts.pingConcurrency, 1)
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				s.checkConnected(id)
			}
		}()
	}
	for _, id := range ids {
		select {
		case work <- id:
		case <-s.ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// connectedCheckHooks run after every Connected check of a cluster with
// its outcome (what Rancher sets the Connected condition to). They run on
// the checking goroutine and must not block.
var connectedCheckHooks []func(s *Standin, id string, connected bool)

func (s *Standin) connectedChecked(id string, connected bool) {
	for _, hook := range connectedCheckHooks {
		hook(s, id, connected)
	}
}

// checkConnected pings one cluster through its steve session, if it has
// one, and records the outcome. It returns whether a check was made.
func (s *Standin) checkConnected(id string) bool {
	key := steveKeyPrefix + id
	if !s.rd.HasSession(key) {
		s.updateRuntime(id, func(c *Cluster) {
			if c.ping.checked && c.ping.connected {
				slog.Info("cluster disconnected: no steve session", "cluster", id)
			}
			c.ping.checked, c.ping.connected = true, false
		})
		s.connectedChecked(id, false)
		return false
	}
	transport := &http.Transport{DialContext: s.rd.Dialer(key)}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: s.opts.pingTimeout}
	status, body, err := 0, "", error(nil)
	resp, err := client.Get("http://not-used/ping")
	if err == nil {
		raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxPingBody))
		// Drain the rest, as Rancher does, so the stream ends cleanly.
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status, body, err = resp.StatusCode, string(raw), readErr
	}
	ok := err == nil && status == http.StatusOK
	s.updateRuntime(id, func(c *Cluster) {
		p := &c.ping
		p.lastAt = time.Now().UTC()
		p.lastStatus, p.lastBody, p.lastError = status, body, ""
		if err != nil {
			p.lastError = err.Error()
		}
		if ok {
			p.ok++
			p.lastOKAt = p.lastAt
		} else {
			p.failed++
		}
		if p.connected != ok || !p.checked {
			slog.Info("cluster connected condition", "cluster", id, "connected", ok, "status", status, "error", p.lastError)
		}
		p.checked, p.connected = true, ok
	})
	s.connectedChecked(id, ok)
	return true
}

// SteveRequest is one HTTP request to send through a steve session.
type SteveRequest struct {
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
	TimeoutSeconds float64           `json:"timeoutSeconds"`
}

// SteveResponse is what came back.
type SteveResponse struct {
	Status     int                 `json:"status"`
	Headers    map[string][]string `json:"headers"`
	Body       string              `json:"body"`
	BodyBase64 string              `json:"bodyBase64"`
}

// steveRequest sends one request through the cluster's steve session, the
// way Rancher's steve proxy does (a fresh connection to 127.0.0.1:6080, no
// keep-alive).
func (s *Standin) steveRequest(ctx context.Context, id string, r SteveRequest) (SteveResponse, error) {
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	if !strings.HasPrefix(r.Path, "/") {
		return SteveResponse{}, badRequestError{errors.New("path must start with /")}
	}
	timeout := 30 * time.Second
	if r.TimeoutSeconds > 0 {
		timeout = time.Duration(r.TimeoutSeconds * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	transport := &http.Transport{DialContext: s.SteveDialer(id), DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+steveProxyAddress+r.Path, strings.NewReader(r.Body))
	if err != nil {
		return SteveResponse{}, err
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return SteveResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return SteveResponse{}, err
	}
	out := SteveResponse{
		Status:     resp.StatusCode,
		Headers:    resp.Header,
		BodyBase64: base64.StdEncoding.EncodeToString(raw),
	}
	if utf8.Valid(raw) {
		out.Body = string(raw)
	}
	return out, nil
}
