package main

// Flags of the Rancher emulation (`standin serve`). Every default is what a
// real Rancher does; tests shorten the timings.

import (
	"flag"
	"fmt"
	"time"
)

// rancherVersion selects the Rancher release whose behaviour is emulated.
type rancherVersion string

const (
	// rancher211 is Rancher 2.11 (also what 2.8-2.13 do downstream): health
	// probe GET /api/v1/namespaces/kube-system, classic list+watch.
	rancher211 rancherVersion = "2.11"
	// rancher214 is Rancher 2.14: health probe GET /readyz, watch-list.
	rancher214 rancherVersion = "2.14"
)

func (v *rancherVersion) String() string { return string(*v) }

func (v *rancherVersion) Set(s string) error {
	switch s {
	case "2.11", "v2.11", "2.11.16", "v2.11.16":
		*v = rancher211
	case "2.14", "v2.14", "2.14.4", "v2.14.4":
		*v = rancher214
	default:
		return fmt.Errorf("unsupported Rancher version %q (2.11 or 2.14)", s)
	}
	return nil
}

// serverVersion is the server-version setting of the emulated release.
func (v rancherVersion) serverVersion() string {
	if v == rancher211 {
		return "v2.11.16"
	}
	return "v2.14.4"
}

// readyzProbe reports whether the health syncer probes /readyz (2.14+)
// rather than the kube-system namespace.
func (v rancherVersion) readyzProbe() bool { return v != rancher211 }

// watchList reports whether informers start with a watch-list request
// (client-go >= 0.35, Rancher 2.14+).
func (v rancherVersion) watchList() bool { return v != rancher211 }

// rancherOptions are the emulation's flags.
type rancherOptions struct {
	version         rancherVersion
	apiToken        string
	serverURL       string
	controllerDelay time.Duration
	probeInterval   time.Duration
	probeRetryDelay time.Duration
	applyRetryDelay time.Duration
	dialRetryDelay  time.Duration
	syncTimeout     time.Duration
	peerSync        time.Duration
	deployBackoff   time.Duration
	downstream      bool
	// downstreamAll also emulates clusters made through the control API.
	downstreamAll bool
}

func defaultRancherOptions() rancherOptions {
	return rancherOptions{
		version:         rancher214,
		controllerDelay: 500 * time.Millisecond,
		probeInterval:   15 * time.Second,
		probeRetryDelay: 5 * time.Second,
		applyRetryDelay: 5 * time.Second,
		dialRetryDelay:  5 * time.Second,
		syncTimeout:     10 * time.Minute,
		peerSync:        2 * time.Minute,
		deployBackoff:   5 * time.Second,
		downstream:      true,
	}
}

// rancherFlags holds the parsed flags; serve parses them before it calls
// the serve extensions.
var rancherFlags = defaultRancherOptions()

func init() {
	serveFlagHooks = append(serveFlagHooks, func(fs *flag.FlagSet) {
		o := &rancherFlags
		fs.Var(&o.version, "rancher-version", "Rancher release to emulate downstream: 2.14 (GET /readyz probe, watch-list informers) or 2.11 (kube-system probe, list+watch)")
		fs.StringVar(&o.apiToken, "api-token", "", "API token (token-xxxxx:secret) the management API accepts; generated and printed as \"apiToken\" when empty")
		fs.StringVar(&o.serverURL, "server-url", "", "the server-url setting (manifest URLs, CATTLE_SERVER); default: the stand-in's own URL")
		fs.DurationVar(&o.controllerDelay, "controller-delay", o.controllerDelay, "how long Rancher's management controllers take to react: v1 cluster -> status.clusterName, token -> manifestUrl, first conditions")
		fs.DurationVar(&o.probeInterval, "probe-interval", o.probeInterval, "health syncer period (GET /readyz, or kube-system with --rancher-version 2.11)")
		fs.DurationVar(&o.probeRetryDelay, "probe-retry-delay", o.probeRetryDelay, "pause between the 3 tries of a health check, and between the kube-system checks of a controller start")
		fs.DurationVar(&o.applyRetryDelay, "apply-retry-delay", o.applyRetryDelay, "pause between the 5 kubectl apply attempts of an agent deploy")
		fs.DurationVar(&o.dialRetryDelay, "dial-retry-delay", o.dialRetryDelay, "Rancher's dialer waits 4 times this (jittered up to 2x) for a missing main tunnel before \"cluster agent disconnected\"")
		fs.DurationVar(&o.syncTimeout, "cache-sync-timeout", o.syncTimeout, "deadline for the per-cluster informers to sync after a controller start (then the cluster is marked unavailable)")
		fs.DurationVar(&o.peerSync, "peer-sync-interval", o.peerSync, "how often stopped per-cluster controllers are started again (Rancher's usercontrollers peer sync)")
		fs.DurationVar(&o.deployBackoff, "deploy-backoff", o.deployBackoff, "first delay before a failed agent deploy is retried (doubles up to 5m)")
		fs.BoolVar(&o.downstream, "downstream", o.downstream, "emulate what Rancher does to a connected cluster (probes, informers, writes, kubectl apply)")
		fs.BoolVar(&o.downstreamAll, "downstream-control-clusters", o.downstreamAll, "also emulate the downstream of clusters made with POST /standin/clusters (off: those serve tunnel-level tests, whose main tunnel gets no requests from Rancher)")
	})
}
