package main

// The tunnel endpoint (/v3/connect and /v3/connect/register): hands the
// request to the remotedialer server, keeps the hijacked connection of every
// session (remotedialer has no API to end a session from the server side, so
// the stand-in closes the connection under it) and records each cluster's
// sessions and connects per tunnel.

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxRecentSessions is how many ended sessions a tunnel remembers.
const maxRecentSessions = 10

// tunnelSession is one accepted websocket.
type tunnelSession struct {
	seq        int64
	clusterID  string
	kind       TunnelKind
	path       string
	remoteAddr string
	userAgent  string
	upgradedAt time.Time
	conn       net.Conn
	wire       *wireTap
	done       chan struct{}

	// Guarded by Standin.mu.
	ready     bool
	readyAt   time.Time
	endedAt   time.Time
	endReason string

	closeOnce   sync.Once
	closedByUs  bool
	closedAbort bool
}

// tunnelState is what one cluster's tunnel of one kind has seen.
type tunnelState struct {
	live             []*tunnelSession
	recent           []*tunnelSession
	connects         int
	disconnects      int
	registerConnects int
	lastPath         string
	lastConnectAt    time.Time
	lastDisconnectAt time.Time
	rejected         int
	lastRejection    *rejection
}

func (t *tunnelState) view() map[string]any {
	sessions := make([]map[string]any, 0, len(t.live)+len(t.recent))
	for _, sess := range t.live {
		sessions = append(sessions, sess.view())
	}
	for i := len(t.recent) - 1; i >= 0; i-- {
		sessions = append(sessions, t.recent[i].view())
	}
	return map[string]any{
		"live":             len(t.live),
		"connects":         t.connects,
		"disconnects":      t.disconnects,
		"registerConnects": t.registerConnects,
		"lastPath":         t.lastPath,
		"lastConnectAt":    nullTime(t.lastConnectAt),
		"lastDisconnectAt": nullTime(t.lastDisconnectAt),
		"rejected":         t.rejected,
		"lastRejection":    t.lastRejection,
		"sessions":         sessions,
	}
}

// view is called with Standin.mu held.
func (sess *tunnelSession) view() map[string]any {
	return map[string]any{
		"seq":        sess.seq,
		"live":       sess.ready && sess.endedAt.IsZero(),
		"path":       sess.path,
		"remoteAddr": sess.remoteAddr,
		"userAgent":  sess.userAgent,
		"upgradedAt": sess.upgradedAt,
		"readyAt":    nullTime(sess.readyAt),
		"endedAt":    nullTime(sess.endedAt),
		"endReason":  sess.endReason,
		"wire":       sess.wire.view(),
	}
}

// tunnelResponseWriter intercepts the hijack that gorilla's Upgrade does,
// to keep the connection and put the tap under it.
type tunnelResponseWriter struct {
	http.ResponseWriter
	s       *Standin
	req     *http.Request
	attempt *tunnelAttempt
	session *tunnelSession
}

func (w *tunnelResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *tunnelResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	sess := &tunnelSession{
		clusterID:  w.attempt.clusterID,
		kind:       w.attempt.kind,
		path:       w.req.URL.Path,
		remoteAddr: w.req.RemoteAddr,
		userAgent:  w.req.UserAgent(),
		upgradedAt: time.Now().UTC(),
		conn:       conn,
		wire:       newWireTap(),
		done:       make(chan struct{}),
	}
	w.s.mu.Lock()
	w.s.sessionSeq++
	sess.seq = w.s.sessionSeq
	w.s.sessions[sess] = struct{}{}
	w.s.mu.Unlock()
	// The client's frames start right after its request; our side writes
	// the 101 response first.
	tc := newTapConn(conn, brw.Reader, sess.wire, false, true)
	// remotedialer registers the session right after the upgrade and then
	// starts reading: the first read means the session can be dialled.
	tc.onFirstRead = func() { w.s.sessionReady(sess, w.attempt.paramsChanged) }
	w.session = sess
	return tc, hijackedReadWriter(tc, brw), nil
}

func (s *Standin) serveTunnel(rw http.ResponseWriter, req *http.Request) {
	att := &tunnelAttempt{}
	req = req.WithContext(context.WithValue(req.Context(), tunnelAttemptKey{}, att))
	w := &tunnelResponseWriter{ResponseWriter: rw, s: s, req: req, attempt: att}
	s.rd.ServeHTTP(w, req)
	if sess := w.session; sess != nil {
		// remotedialer leaves the socket open when a session ends on a
		// protocol error; close it so the agent notices.
		sess.close(false)
		s.sessionEnded(sess)
	}
}

func (s *Standin) sessionReady(sess *tunnelSession, paramsChanged bool) {
	s.mu.Lock()
	c := s.clusters[sess.clusterID]
	if c == nil || sess.kind == "" {
		s.mu.Unlock()
		return
	}
	sess.ready = true
	sess.readyAt = time.Now().UTC()
	t := c.tunnel(sess.kind)
	t.live = append(t.live, sess)
	t.connects++
	if strings.HasSuffix(sess.path, "/register") {
		t.registerConnects++
	}
	t.lastPath = sess.path
	t.lastConnectAt = sess.readyAt
	ev := TunnelEvent{
		ClusterID:     sess.clusterID,
		Tunnel:        sess.kind,
		Connected:     true,
		Live:          len(t.live),
		ParamsChanged: paramsChanged && sess.kind == TunnelMain,
		Path:          sess.path,
		Session:       sess.seq,
	}
	s.mu.Unlock()
	s.emit(ev)
}

func (s *Standin) sessionEnded(sess *tunnelSession) {
	s.mu.Lock()
	delete(s.sessions, sess)
	sess.endedAt = time.Now().UTC()
	switch {
	case sess.closedByUs && sess.closedAbort:
		sess.endReason = "reset by stand-in"
	case sess.closedByUs:
		sess.endReason = "closed by stand-in"
	default:
		if err := sess.wire.firstReadErr(); err != nil {
			sess.endReason = err.Error()
		} else {
			sess.endReason = "session ended"
		}
	}
	var ev *TunnelEvent
	if c := s.clusters[sess.clusterID]; c != nil && sess.ready {
		t := c.tunnel(sess.kind)
		for i, live := range t.live {
			if live == sess {
				t.live = append(t.live[:i:i], t.live[i+1:]...)
				break
			}
		}
		t.disconnects++
		t.lastDisconnectAt = sess.endedAt
		t.recent = append(t.recent, sess)
		if len(t.recent) > maxRecentSessions {
			t.recent = t.recent[len(t.recent)-maxRecentSessions:]
		}
		ev = &TunnelEvent{
			ClusterID: sess.clusterID,
			Tunnel:    sess.kind,
			Live:      len(t.live),
			Path:      sess.path,
			Session:   sess.seq,
		}
	}
	s.mu.Unlock()
	close(sess.done)
	if ev != nil {
		s.emit(*ev)
	}
}

// close ends the session from the server side; abort resets the TCP
// connection instead of closing TLS cleanly.
func (sess *tunnelSession) close(abort bool) {
	sess.closeOnce.Do(func() {
		if abort {
			raw := sess.conn
			if tc, ok := raw.(*tls.Conn); ok {
				raw = tc.NetConn()
			}
			if tcp, ok := raw.(*net.TCPConn); ok {
				tcp.SetLinger(0)
			}
			raw.Close()
		}
		sess.conn.Close()
	})
}

// markClosedByUs must run before close so that the end reason is right.
func (s *Standin) markClosedByUs(sess *tunnelSession, abort bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sess.closedByUs {
		sess.closedByUs = true
		sess.closedAbort = abort
	}
}

// Disconnect closes the live sessions of a cluster's tunnel(s) and waits
// until remotedialer has dropped them. kinds empty means both.
func (s *Standin) Disconnect(ctx context.Context, clusterID string, kinds []TunnelKind, abort bool) (int, error) {
	if len(kinds) == 0 {
		kinds = []TunnelKind{TunnelMain, TunnelSteve}
	}
	s.mu.Lock()
	c := s.clusters[clusterID]
	if c == nil {
		s.mu.Unlock()
		return 0, errUnknownCluster
	}
	var victims []*tunnelSession
	for _, kind := range kinds {
		victims = append(victims, c.tunnel(kind).live...)
	}
	s.mu.Unlock()
	for _, sess := range victims {
		s.markClosedByUs(sess, abort)
		sess.close(abort)
	}
	for _, sess := range victims {
		select {
		case <-sess.done:
		case <-ctx.Done():
			return len(victims), ctx.Err()
		}
	}
	return len(victims), nil
}

// liveSessions returns the live sessions of one tunnel, oldest first (the
// order remotedialer dials in).
func (s *Standin) liveSessions(clusterID string, kind TunnelKind) []*tunnelSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[clusterID]
	if c == nil {
		return nil
	}
	return append([]*tunnelSession(nil), c.tunnel(kind).live...)
}

// closeAllSessions ends every hijacked connection (http.Server.Close does
// not know them).
func (s *Standin) closeAllSessions() {
	s.mu.Lock()
	all := make([]*tunnelSession, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		s.markClosedByUs(sess, false)
		sess.close(false)
	}
}
