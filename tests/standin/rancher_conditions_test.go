package main

import (
	"testing"
	"time"
)

func TestSummarizeCluster(t *testing.T) {
	now := time.Now()
	old := now.Add(-time.Minute)
	mgmt := func(extra ...mgmtCondition) mgmtConditions {
		cs := mgmtConditions{}
		for _, typ := range []string{condBackingNamespaceCreated, condDefaultProjectCreated, condSystemProjectCreated, condInitialRolesPopulated, condCreatorMadeOwner} {
			cs.set(now, typ, statusTrue, "", "")
		}
		for _, c := range extra {
			cs.set(now, c.Type, c.Status, c.Reason, c.Message)
		}
		return cs
	}
	c := func(typ, status, reason, message string) mgmtCondition {
		return mgmtCondition{Type: typ, Status: status, Reason: reason, Message: message}
	}
	connected := []mgmtCondition{
		c(condPending, statusTrue, "", ""), c(condProvisioned, statusTrue, "", ""), c(condWaiting, statusTrue, "", ""),
		c(condConnected, statusTrue, "", ""), c(condReady, statusTrue, "", ""),
	}
	cases := []struct {
		name         string
		conds        mgmtConditions
		created      time.Time
		state, trans string
		wantMessage  string
	}{
		{"fresh", mgmtConditions{}, now, "initializing", "yes", ""},
		{"fresh after 5s", mgmtConditions{}, old, "active", "no", ""},
		{"no agent yet", mgmt(c(condPending, statusUnknown, "", ""), c(condProvisioned, statusUnknown, "", ""),
			c(condWaiting, statusUnknown, "", msgWaitingForAPI)), old, "pending", "yes", ""},
		{"main tunnel up", mgmt(c(condPending, statusTrue, "", ""), c(condProvisioned, statusTrue, reasonPending, msgWaitingFullConfig),
			c(condWaiting, statusUnknown, "", msgWaitingForAPI)), old, "waiting", "yes", msgWaitingForAPI},
		{"steve tunnel missing", mgmt(c(condPending, statusTrue, "", ""), c(condProvisioned, statusTrue, "", ""),
			c(condWaiting, statusTrue, "", ""), c(condConnected, statusFalse, "", ""),
			c(condReady, statusFalse, reasonDisconnected, msgAgentNotConnected)), old, "unavailable", "yes", msgAgentNotConnected},
		{"health check failed", mgmt(append(connected[:4:4], c(condReady, statusFalse, reasonError, "cluster health check failed: x"))...),
			old, "error", "error", "cluster health check failed: x"},
		{"agent deploy failed", mgmt(append(connected, c(condAgentDeployed, statusFalse, reasonError, "apply failed"))...),
			old, "provisioning", "error", "apply failed"},
		{"updating", mgmt(append(connected, c(condUpdated, statusUnknown, reasonPending, msgWaitingFullConfig))...),
			old, "updating", "yes", msgWaitingFullConfig},
		{"ready unknown", mgmt(append(connected[:4:4], c(condReady, statusUnknown, "", ""))...), old, "unavailable", "error", ""},
		{"active", mgmt(append(connected, c(condAgentDeployed, statusTrue, "", ""), c(condUpdated, statusTrue, "", ""))...),
			old, "active", "no", ""},
	}
	for _, tc := range cases {
		s := summarizeCluster(tc.conds, tc.created, false, now)
		if s.State != tc.state || s.transitioning() != tc.trans || s.message() != tc.wantMessage {
			t.Errorf("%s: got %q/%q/%q, want %q/%q/%q", tc.name, s.State, s.transitioning(), s.message(), tc.state, tc.trans, tc.wantMessage)
		}
	}
}

func TestConditionSetKeepsTimestampAndOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var cs mgmtConditions
	cs.set(t0, "A", statusTrue, "", "")
	cs.set(t0, "B", statusUnknown, "", "m")
	if cs.set(t0.Add(time.Minute), "A", statusTrue, "", "") {
		t.Fatal("an unchanged condition reported a change")
	}
	if cs.find("A").LastUpdateTime != "2026-01-01T00:00:00Z" {
		t.Fatalf("timestamp moved: %s", cs.find("A").LastUpdateTime)
	}
	cs.setStatus(t0.Add(time.Minute), "B", statusTrue)
	if b := cs.find("B"); b.Message != "m" || b.LastUpdateTime != "2026-01-01T00:01:00Z" {
		t.Fatalf("setStatus: %+v", *b)
	}
	if cs[0].Type != "A" || cs[1].Type != "B" {
		t.Fatalf("order changed: %+v", cs)
	}
}
