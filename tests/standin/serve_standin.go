package main

// The Standin: the cluster registry every part of `standin serve` shares,
// and the extension points other files use to add Rancher behaviour without
// editing this one.
//
// Extension points (append to them from an init() in your own file):
//   - serveFlagHooks: register extra `serve` flags.
//   - serveExtensions: add routes to the Rancher-facing HTTPS mux, subscribe
//     to tunnel events (Standin.OnTunnelEvent), start background work bound
//     to Standin.Context().
//   - controlExtensions: add routes to the plain-HTTP test-control mux.
//   - clusterViewHooks: add keys to the JSON a cluster is shown as.
//   - stateHooks: persist extension-wide data with the state; per-cluster
//     data goes into Cluster.Ext (persisted) or SetResult (not persisted).

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rancher/remotedialer"
)

var (
	serveFlagHooks    []func(fs *flag.FlagSet)
	serveExtensions   []func(s *Standin, mux *http.ServeMux)
	controlExtensions []func(s *Standin, mux *http.ServeMux)
	// clusterViewHooks run with the stand-in locked: read c, write view,
	// call no Standin method.
	clusterViewHooks []func(s *Standin, c *Cluster, view map[string]any)
)

// tokenAlphabet is wrangler's randomtoken alphabet, which Rancher also uses
// for generated names such as cluster ids.
const tokenAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func randomString(n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(tokenAlphabet)))
	for i := range out {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		out[i] = tokenAlphabet[v.Int64()]
	}
	return string(out)
}

// newRegistrationToken returns a token shaped like a cluster registration
// token (54 characters).
func newRegistrationToken() string { return randomString(54) }

// ClusterToken is one registration token of a cluster (a CRT: default-token,
// system, ...). Any of them authorises both tunnels.
type ClusterToken struct {
	Name  string `json:"name"`
	Token string `json:"token"`
}

// TunnelParams are the decoded X-API-Tunnel-Params of the main tunnel:
// what Rancher stores as apiEndpoint, caCert and the SA token secret.
type TunnelParams struct {
	Address string `json:"address"`
	Token   string `json:"token"`
	CACert  string `json:"caCert"`
}

// Cluster is one imported cluster. Exported fields are persisted in the
// state directory; unexported ones live as long as the process. All fields
// are guarded by Standin.mu: use Standin.WithCluster to change them.
type Cluster struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Tokens    []ClusterToken `json:"tokens"`
	CreatedAt time.Time      `json:"createdAt"`
	// Params are the last accepted tunnel params, nil before the first
	// main-tunnel connect.
	Params *TunnelParams `json:"params,omitempty"`
	// ParamsChanges counts connects whose params differed from the stored
	// ones (the first connect is not a change). Rancher rewrites the SA token
	// secret and restarts every controller of the cluster on each change.
	ParamsChanges int       `json:"paramsChanges"`
	ParamsSetAt   time.Time `json:"paramsSetAt,omitzero"`
	// Ext is extension data persisted with the cluster, by extension name.
	Ext map[string]json.RawMessage `json:"ext,omitempty"`

	tunnels map[TunnelKind]*tunnelState
	ping    pingStats
	results map[string]any
}

func (c *Cluster) tunnel(kind TunnelKind) *tunnelState {
	if c.tunnels == nil {
		c.tunnels = map[TunnelKind]*tunnelState{}
	}
	t := c.tunnels[kind]
	if t == nil {
		t = &tunnelState{}
		c.tunnels[kind] = t
	}
	return t
}

// TunnelEvent tells extensions that a tunnel session of a cluster became
// usable (Connected) or ended. Handlers run synchronously on the tunnel's
// goroutine and must not block: start a goroutine for anything slow.
type TunnelEvent struct {
	ClusterID string
	Tunnel    TunnelKind
	Connected bool
	// Live is the number of live sessions of this tunnel after the event.
	Live int
	// ParamsChanged is true on a main-tunnel connect whose params were set
	// for the first time or differed from the stored ones.
	ParamsChanged bool
	Path          string
	Session       int64
}

type serveOptions struct {
	listen          string
	controlListen   string
	stateDir        string
	pingInterval    time.Duration
	pingTimeout     time.Duration
	pingConcurrency int
	hosts           []string
}

// Standin is one running Rancher stand-in.
type Standin struct {
	opts     serveOptions
	ca       *standinCA
	cacerts  string
	checksum string
	rd       *remotedialer.Server
	ctx      context.Context

	// URL and ControlURL are set once the listeners are bound.
	URL        string
	ControlURL string

	mu          sync.Mutex
	clusters    map[string]*Cluster
	byToken     map[string]string
	eventHooks  []func(TunnelEvent)
	sessions    map[*tunnelSession]struct{}
	sessionSeq  int64
	rejections  []rejection
	stateExt    map[string]json.RawMessage
	persistence *statePersistence
}

func newStandin(ctx context.Context, opts serveOptions) *Standin {
	s := &Standin{
		opts:     opts,
		ctx:      ctx,
		clusters: map[string]*Cluster{},
		byToken:  map[string]string{},
		sessions: map[*tunnelSession]struct{}{},
		stateExt: map[string]json.RawMessage{},
	}
	s.rd = remotedialer.New(s.authorizeTunnel, s.writeTunnelError)
	return s
}

// Context is cancelled when the stand-in shuts down.
func (s *Standin) Context() context.Context { return s.ctx }

// CACerts is the cacerts setting (the CA PEM, trimmed).
func (s *Standin) CACerts() string { return s.cacerts }

// CAChecksum is what the import manifest puts into CATTLE_CA_CHECKSUM.
func (s *Standin) CAChecksum() string { return s.checksum }

// TunnelServer is the remotedialer server both tunnels terminate in.
func (s *Standin) TunnelServer() *remotedialer.Server { return s.rd }

// MainDialer dials through the cluster's main tunnel, as Rancher's cluster
// dialer does for every downstream API request.
func (s *Standin) MainDialer(clusterID string) remotedialer.Dialer {
	return s.rd.Dialer(clusterID)
}

// SteveDialer dials through the cluster's steve tunnel.
func (s *Standin) SteveDialer(clusterID string) remotedialer.Dialer {
	return s.rd.Dialer(steveKeyPrefix + clusterID)
}

// OnTunnelEvent registers fn for every tunnel connect and disconnect.
func (s *Standin) OnTunnelEvent(fn func(TunnelEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventHooks = append(s.eventHooks, fn)
}

func (s *Standin) emit(ev TunnelEvent) {
	s.mu.Lock()
	hooks := slices.Clone(s.eventHooks)
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(ev)
	}
}

var (
	errClusterExists   = errors.New("cluster already exists")
	errUnknownCluster  = errors.New("no such cluster")
	errTokenInUse      = errors.New("token already in use")
	errEmptyTokenValue = errors.New("empty token")
)

// ClusterSpec is what CreateCluster needs; empty fields are generated.
type ClusterSpec struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Token is the default-token's value; generated when empty.
	Token string `json:"token"`
}

// CreateCluster registers a cluster with one registration token named
// default-token and returns a copy of it.
func (s *Standin) CreateCluster(spec ClusterSpec) (Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := spec.ID
	if id == "" {
		for id == "" || s.clusters[id] != nil {
			id = "c-" + randomString(5)
		}
	} else if s.clusters[id] != nil {
		return Cluster{}, fmt.Errorf("%w: %s", errClusterExists, id)
	}
	token := spec.Token
	if token == "" {
		token = newRegistrationToken()
	} else if _, used := s.byToken[token]; used {
		return Cluster{}, errTokenInUse
	}
	name := spec.Name
	if name == "" {
		name = id
	}
	c := &Cluster{
		ID:        id,
		Name:      name,
		Tokens:    []ClusterToken{{Name: "default-token", Token: token}},
		CreatedAt: time.Now().UTC(),
	}
	s.clusters[id] = c
	s.byToken[token] = id
	s.markDirtyLocked()
	return c.copyLocked(), nil
}

// AddToken adds a registration token to a cluster (an empty value is
// generated) and returns its value.
func (s *Standin) AddToken(clusterID, name, value string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[clusterID]
	if c == nil {
		return "", errUnknownCluster
	}
	if value == "" {
		value = newRegistrationToken()
	} else if _, used := s.byToken[value]; used {
		return "", errTokenInUse
	}
	c.Tokens = append(c.Tokens, ClusterToken{Name: name, Token: value})
	s.byToken[value] = clusterID
	s.markDirtyLocked()
	return value, nil
}

// RemoveToken retires a token: new tunnels can no longer use it, existing
// ones stay up (as in Rancher).
func (s *Standin) RemoveToken(clusterID, value string) error {
	if value == "" {
		return errEmptyTokenValue
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[clusterID]
	if c == nil {
		return errUnknownCluster
	}
	c.Tokens = slices.DeleteFunc(c.Tokens, func(t ClusterToken) bool { return t.Token == value })
	delete(s.byToken, value)
	s.markDirtyLocked()
	return nil
}

// DeleteCluster forgets a cluster and closes its tunnels.
func (s *Standin) DeleteCluster(clusterID string) error {
	s.mu.Lock()
	c := s.clusters[clusterID]
	if c == nil {
		s.mu.Unlock()
		return errUnknownCluster
	}
	delete(s.clusters, clusterID)
	for _, t := range c.Tokens {
		delete(s.byToken, t.Token)
	}
	s.markDirtyLocked()
	var live []*tunnelSession
	for _, t := range c.tunnels {
		live = append(live, t.live...)
	}
	s.mu.Unlock()
	for _, sess := range live {
		s.markClosedByUs(sess, false)
		sess.close(false)
	}
	return nil
}

// clusterByToken returns the id of the cluster a registration token belongs to.
func (s *Standin) clusterByToken(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byToken[token]
	return id, ok
}

// Cluster returns a copy of a cluster's persisted fields.
func (s *Standin) Cluster(id string) (Cluster, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[id]
	if c == nil {
		return Cluster{}, false
	}
	return c.copyLocked(), true
}

// ClusterIDs returns every cluster id, sorted.
func (s *Standin) ClusterIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.clusters))
	for id := range s.clusters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// WithCluster runs fn with the stand-in locked; changes fn makes to the
// cluster's persisted fields are saved. fn must not call other Standin
// methods.
func (s *Standin) WithCluster(id string, fn func(c *Cluster) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[id]
	if c == nil {
		return errUnknownCluster
	}
	if err := fn(c); err != nil {
		return err
	}
	s.markDirtyLocked()
	return nil
}

// updateRuntime changes fields that are not persisted (no save follows).
func (s *Standin) updateRuntime(id string, fn func(c *Cluster)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[id]
	if c == nil {
		return false
	}
	fn(c)
	return true
}

// SetResult records a JSON-able value under key in the cluster's "results"
// (shown by the control API, not persisted).
func (s *Standin) SetResult(id, key string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[id]
	if c == nil {
		return errUnknownCluster
	}
	if c.results == nil {
		c.results = map[string]any{}
	}
	c.results[key] = value
	return nil
}

// SetStateExt stores extension-wide data persisted with the state.
func (s *Standin) SetStateExt(name string, value json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stateExt[name] = value
	s.markDirtyLocked()
}

// StateExt returns what SetStateExt stored (also after a restart).
func (s *Standin) StateExt(name string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateExt[name]
}

func (c *Cluster) copyLocked() Cluster {
	out := Cluster{
		ID:            c.ID,
		Name:          c.Name,
		Tokens:        slices.Clone(c.Tokens),
		CreatedAt:     c.CreatedAt,
		ParamsChanges: c.ParamsChanges,
		ParamsSetAt:   c.ParamsSetAt,
	}
	if c.Params != nil {
		p := *c.Params
		out.Params = &p
	}
	if c.Ext != nil {
		out.Ext = make(map[string]json.RawMessage, len(c.Ext))
		for k, v := range c.Ext {
			out.Ext[k] = slices.Clone(v)
		}
	}
	return out
}

// view is the JSON the control API shows for a cluster: everything
// recorded, tokens included (the control API is for tests only).
func (s *Standin) view(c *Cluster) map[string]any {
	tunnels := map[string]any{}
	for _, kind := range []TunnelKind{TunnelMain, TunnelSteve} {
		tunnels[string(kind)] = c.tunnel(kind).view()
	}
	results := map[string]any{}
	for k, v := range c.results {
		results[k] = v
	}
	v := map[string]any{
		"id":            c.ID,
		"name":          c.Name,
		"tokens":        slices.Clone(c.Tokens),
		"createdAt":     c.CreatedAt,
		"params":        c.Params,
		"paramsChanges": c.ParamsChanges,
		"paramsSetAt":   nullTime(c.ParamsSetAt),
		"tunnels":       tunnels,
		"ping":          c.ping.view(),
		"results":       results,
		"ext":           c.Ext,
	}
	for _, hook := range clusterViewHooks {
		hook(s, c, v)
	}
	return v
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// clusterView returns the control-API JSON of one cluster.
func (s *Standin) clusterView(id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[id]
	if c == nil {
		return nil, false
	}
	return s.view(c), true
}

func (s *Standin) clusterViews() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.clusters))
	for id := range s.clusters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.view(s.clusters[id]))
	}
	return out
}
