package main

// The conditions of a management (v3) Cluster and the state Rancher
// displays for them (rancher-server-side §5, §6). Conditions keep the order
// in which they were first set, as norman appends them; lastUpdateTime
// moves only when status, reason or message change.

import (
	"strings"
	"time"
)

// mgmtCondition is one entry of status.conditions, as norman serialises it.
type mgmtCondition struct {
	Type           string `json:"type"`
	Status         string `json:"status"`
	LastUpdateTime string `json:"lastUpdateTime,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Message        string `json:"message,omitempty"`
}

// Condition types of an imported cluster.
const (
	condBackingNamespaceCreated       = "BackingNamespaceCreated"
	condDefaultProjectCreated         = "DefaultProjectCreated"
	condSystemProjectCreated          = "SystemProjectCreated"
	condInitialRolesPopulated         = "InitialRolesPopulated"
	condCreatorMadeOwner              = "CreatorMadeOwner"
	condPending                       = "Pending"
	condProvisioned                   = "Provisioned"
	condWaiting                       = "Waiting"
	condNoDiskPressure                = "NoDiskPressure"
	condNoMemoryPressure              = "NoMemoryPressure"
	condServiceAccountSecretsMigrated = "ServiceAccountSecretsMigrated"
	condConnected                     = "Connected"
	condAgentTLSStrictCheck           = "AgentTlsStrictCheck"
	condGlobalAdminsSynced            = "GlobalAdminsSynced"
	condReady                         = "Ready"
	condSystemAccountCreated          = "SystemAccountCreated"
	condAgentDeployed                 = "AgentDeployed"
	condUpdated                       = "Updated"
)

const (
	statusTrue    = "True"
	statusFalse   = "False"
	statusUnknown = "Unknown"
)

// Messages and reasons Rancher writes.
const (
	msgWaitingForAPI       = "Waiting for API to be available"
	msgWaitingFullConfig   = "waiting for full cluster configuration"
	msgAgentNotConnected   = "Cluster agent is not connected"
	reasonPending          = "Pending"
	reasonDisconnected     = "Disconnected"
	reasonError            = "Error"
	prefixHealthCheck      = "cluster health check failed: "
	prefixHealthNamespace  = "Failed to communicate with API server during namespace check: "
	prefixAgentApplyFailed = "Error while applying agent YAML, it will be retried automatically: "
)

// mgmtConditions is an ordered condition list.
type mgmtConditions []mgmtCondition

func (cs mgmtConditions) find(typ string) *mgmtCondition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

func (cs mgmtConditions) status(typ string) string {
	if c := cs.find(typ); c != nil {
		return c.Status
	}
	return ""
}

func (cs mgmtConditions) isTrue(typ string) bool    { return cs.status(typ) == statusTrue }
func (cs mgmtConditions) isFalse(typ string) bool   { return cs.status(typ) == statusFalse }
func (cs mgmtConditions) isUnknown(typ string) bool { return cs.status(typ) == statusUnknown }

func (cs mgmtConditions) reason(typ string) string {
	if c := cs.find(typ); c != nil {
		return c.Reason
	}
	return ""
}

// set writes a condition (appending it when new) and reports whether
// anything changed.
func (cs *mgmtConditions) set(now time.Time, typ, status, reason, message string) bool {
	c := cs.find(typ)
	if c == nil {
		*cs = append(*cs, mgmtCondition{Type: typ})
		c = &(*cs)[len(*cs)-1]
	} else if c.Status == status && c.Reason == reason && c.Message == message {
		return false
	}
	c.Status, c.Reason, c.Message = status, reason, message
	c.LastUpdateTime = now.UTC().Format(time.RFC3339)
	return true
}

// setStatus changes only the status, as norman's Cond.True/False do.
func (cs *mgmtConditions) setStatus(now time.Time, typ, status string) bool {
	c := cs.find(typ)
	if c == nil {
		return cs.set(now, typ, status, "", "")
	}
	return cs.set(now, typ, status, c.Reason, c.Message)
}

// createUnknownIfNotExists is norman's CreateUnknownIfNotExists.
func (cs *mgmtConditions) createUnknownIfNotExists(now time.Time, typ string) bool {
	if cs.find(typ) != nil {
		return false
	}
	return cs.set(now, typ, statusUnknown, "", "")
}

// mgmtSummary is the displayed state of a cluster.
type mgmtSummary struct {
	State         string
	Error         bool
	Transitioning bool
	Message       []string
}

// transitioning is the v3 "transitioning" field.
func (s mgmtSummary) transitioning() string {
	switch {
	case s.Error:
		return "error"
	case s.Transitioning:
		return "yes"
	}
	return "no"
}

func (s mgmtSummary) message() string { return strings.Join(s.Message, "; ") }

// summaryUnknownStates is wrangler's TransitioningUnknown table (the entries
// a cluster can carry): Unknown means transitioning, False means error.
var summaryUnknownStates = map[string]string{
	"Active":                      "activating",
	"AddonDeploy":                 "provisioning",
	"AgentDeployed":               "provisioning",
	"BackingNamespaceCreated":     "configuring",
	"CertsGenerated":              "provisioning",
	"ConfigOK":                    "configuring",
	"Created":                     "creating",
	"CreatorMadeOwner":            "configuring",
	"DefaultNamespaceAssigned":    "configuring",
	"DefaultNetworkPolicyCreated": "configuring",
	"DefaultProjectCreated":       "configuring",
	"etcd":                        "provisioning",
	"Initialized":                 "initializing",
	"Pending":                     "pending",
	"Provisioned":                 "provisioning",
	"Removed":                     "removing",
	"Updated":                     "updating",
	"Updating":                    "updating",
	"Upgraded":                    "upgrading",
	"Waiting":                     "waiting",
	"InitialRolesPopulated":       "activating",
}

// summarizeCluster computes the displayed state of a management cluster
// the way wrangler's summariser does for a norman v3 Cluster: errors
// (Reason Error, Failed/Stalled True), then the transitioning table, then
// Ready, then "initializing" for a fresh object without conditions,
// "removing" while it is being deleted, else "active".
func summarizeCluster(conds mgmtConditions, created time.Time, removing bool, now time.Time) mgmtSummary {
	var s mgmtSummary
	// checkErrors
	for _, c := range conds {
		failed := (c.Type == "Failed" || c.Type == "Stalled") && c.Status == statusTrue
		if c.Reason == reasonError || failed {
			s.Error = true
			s.Message = append(s.Message, c.Message)
			if s.State == "" || s.State == "active" {
				s.State = "error"
			}
		}
	}
	// checkGenericTransitioning: the TransitioningUnknown table
	for _, c := range conds {
		state, ok := summaryUnknownStates[c.Type]
		if !ok {
			continue
		}
		switch {
		case c.Status == statusFalse:
			s.Error = true
			s.State = state
			s.Message = append(s.Message, c.Message)
		case c.Status == statusUnknown && s.State == "":
			s.Transitioning = true
			s.State = state
			s.Message = append(s.Message, c.Message)
		}
	}
	// Ready: False is "unavailable" (transitioning), Unknown an error.
	ready, readyMessage := true, ""
	for _, c := range conds {
		if s.State != "" {
			break
		}
		if c.Type != condReady {
			continue
		}
		switch c.Status {
		case statusFalse:
			ready, readyMessage = false, c.Message
		case statusUnknown:
			s.Error = true
			s.State = "unavailable"
			s.Message = append(s.Message, c.Message)
		}
	}
	if s.State == "" && !ready {
		s.Transitioning = true
		s.State = "unavailable"
		s.Message = append(s.Message, readyMessage)
	}
	// checkInitializing: conditions present but empty, created < 5 s ago
	if s.State == "" && len(conds) == 0 && created.Add(5*time.Second).After(now) {
		s.State = "initializing"
		s.Transitioning = true
	}
	// checkRemoving
	if removing {
		s.State = "removing"
		s.Transitioning = true
	}
	if s.State == "" {
		s.State = "active"
	}
	s.Message = dedupMessages(s.Message)
	return s
}

func dedupMessages(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range in {
		m = strings.TrimSpace(m)
		if m == "" || seen[m] {
			continue
		}
		seen[m] = true
		out = append(out, m)
	}
	return out
}
