package main

// The client Rancher uses for a downstream cluster (rancher-server-side §4,
// clustermanager.ToRESTConfig): https://<announced address>, TLS verified
// against the announced CA with the address host as server name, ALPN
// http/1.1 only, the announced bearer token, no rate limit, and every
// connection dialled through the cluster's main tunnel.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// errAgentDisconnected is Rancher's dialer error when no main tunnel is up.
var errAgentDisconnected = errors.New("cluster agent disconnected")

// Accept headers Rancher's clients send.
const (
	// acceptControllers is what lasso/norman/wrangler clients send
	// (informers, most writes; JSON request bodies).
	acceptControllers = "application/vnd.kubernetes.protobuf, application/json"
	// contentTypeProtobuf makes a typed clientset send protobuf bodies.
	contentTypeProtobuf = "application/vnd.kubernetes.protobuf"
)

// clusterDialer is Rancher's cluster dialer: through the main tunnel; when
// no session exists and retry is set, it waits about 30 s (4 jittered
// pauses) for the agent before failing with "cluster agent disconnected".
func (rc *rancherCluster) clusterDialer(retry bool) func(ctx context.Context, network, address string) (net.Conn, error) {
	rd := rc.srv.s.TunnelServer()
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if !rd.HasSession(rc.id) {
			if !retry {
				return nil, errAgentDisconnected
			}
			found := false
			for i := 0; i < 4 && !found; i++ {
				if rd.HasSession(rc.id) {
					found = true
					break
				}
				base := rc.opts().dialRetryDelay
				pause := base + time.Duration(rand.Int64N(int64(base)+1))
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-rc.ctx.Done():
					return nil, rc.ctx.Err()
				case <-time.After(pause):
				}
			}
			if !found && !rd.HasSession(rc.id) {
				return nil, errAgentDisconnected
			}
		}
		return rc.srv.s.MainDialer(rc.id)(ctx, network, address)
	}
}

// restConfig is the REST config of the cluster's K8sClient (typed
// clientset: 45 s timeout, protobuf where the type prefers it).
func (rc *rancherCluster) restConfig(retry bool) (*rest.Config, error) {
	p := rc.params()
	if p == nil {
		return nil, errors.New("waiting for the cluster agent: no tunnel params yet")
	}
	return rancherRESTConfig(rc.id, *p, rc.clusterDialer(retry))
}

func rancherRESTConfig(clusterID string, p TunnelParams, dial func(ctx context.Context, network, address string) (net.Conn, error)) (*rest.Config, error) {
	ca, err := base64.StdEncoding.DecodeString(p.CACert)
	if err != nil {
		return nil, fmt.Errorf("caCert of the tunnel params: %w", err)
	}
	host, _, err := net.SplitHostPort(p.Address)
	if err != nil {
		return nil, fmt.Errorf("address of the tunnel params: %w", err)
	}
	return &rest.Config{
		Host:        "https://" + p.Address,
		BearerToken: p.Token,
		TLSClientConfig: rest.TLSClientConfig{
			// Rancher appends the cluster name to make the cache key unique.
			CAData:     append(append([]byte(nil), ca...), []byte("\n"+clusterID)...),
			ServerName: host,
			NextProtos: []string{"http/1.1"},
		},
		Timeout:     45 * time.Second,
		RateLimiter: flowcontrol.NewFakeAlwaysRateLimiter(),
		UserAgent:   rest.DefaultKubernetesUserAgent() + " cluster " + clusterID,
		Dial:        dial,
	}, nil
}

// controllerConfig is the config of Rancher's controller clients
// (lasso/norman/wrangler): protobuf accepted, JSON bodies, no client
// timeout (watches carry their own).
func controllerConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Timeout = 0
	c.AcceptContentTypes = acceptControllers
	c.ContentType = "application/json"
	return c
}
