package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

func (s *kubeSuite) watchChecks() []kubeCheckDef {
	return []kubeCheckDef{
		{"watch/resume", kubeLevelRancher, s.checkWatchResume},
		{"watch/too-old", kubeLevelRancher, s.checkWatchTooOld},
		{"watch/watch-list", kubeLevelRancher, s.checkWatchList},
		{"watch/watch-list-invalid", kubeLevelStrict, s.checkWatchListInvalid},
		{"watch/timeout", kubeLevelRancher, s.checkWatchTimeout},
	}
}

// kubeRawWatch is a JSON watch stream read by rawWatch.
type kubeRawWatch struct {
	Status      int
	ContentType string
	Events      []map[string]any
	Body        []byte // when the answer is not a stream (an error)
	Ended       bool   // the server closed the stream
}

// rawWatch opens a JSON watch and reads events until done returns true, the
// server ends the stream, or timeout passes.
func (s *kubeSuite) rawWatch(ctx context.Context, path string, timeout time.Duration, done func([]map[string]any) bool) (kubeRawWatch, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(s.host, "/")+path, nil)
	if err != nil {
		return kubeRawWatch{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return kubeRawWatch{}, err
	}
	defer resp.Body.Close()
	out := kubeRawWatch{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	if resp.StatusCode != 200 {
		out.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return out, nil
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev map[string]any
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				out.Ended = true
				return out, nil
			}
			if ctx.Err() != nil {
				return out, nil // our timeout
			}
			return out, err
		}
		out.Events = append(out.Events, ev)
		if done != nil && done(out.Events) {
			return out, nil
		}
	}
}

// eventSummary renders events as "TYPE name" strings.
func kubeEventSummary(events []map[string]any) []string {
	var out []string
	for _, ev := range events {
		name, _ := kubeDig(ev, "object", "metadata", "name").(string)
		out = append(out, strings.TrimSpace(fmt.Sprint(ev["type"])+" "+name))
	}
	return out
}

func (s *kubeSuite) checkWatchResume(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	sel := kubeRunLabel + "=" + s.run + ",w=resume"
	list, err := cms.List(c.ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return err
	}
	rv := list.ResourceVersion
	cm, err := cms.Create(c.ctx, s.cm(s.name("resume"), map[string]string{"w": "resume"}), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	cm.Data["k"] = "v2"
	if _, err := cms.Update(c.ctx, cm, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if err := cms.Delete(c.ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	want := []string{"ADDED " + cm.Name, "MODIFIED " + cm.Name, "DELETED " + cm.Name}

	// typed (protobuf) watch from the list's resourceVersion
	w, err := cms.Watch(c.ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv})
	if err != nil {
		return fmt.Errorf("typed watch: %w", err)
	}
	var typed []string
	timeout := time.After(s.opts.SyncTimeout)
loop:
	for len(typed) < 3 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				break loop
			}
			name := ""
			if m, ok := ev.Object.(*corev1.ConfigMap); ok {
				name = m.Name
			}
			typed = append(typed, string(ev.Type)+" "+name)
		case <-timeout:
			break loop
		}
	}
	w.Stop()
	c.expect(strings.Join(typed, ";") == strings.Join(want, ";"), "typed watch from rv: %v, want %v", typed, want)

	// the same as a raw JSON stream, recorded
	q := url.Values{"watch": {"true"}, "labelSelector": {sel}, "resourceVersion": {rv}, "allowWatchBookmarks": {"true"}}
	rw, err := s.rawWatch(c.ctx, "/api/v1/namespaces/"+s.ns+"/configmaps?"+q.Encode(), s.opts.SyncTimeout, func(ev []map[string]any) bool {
		return len(ev) >= 3
	})
	if err != nil {
		return err
	}
	c.record("raw JSON watch from rv", map[string]any{"status": rw.Status, "contentType": rw.ContentType, "events": rw.Events})
	c.expect(rw.Status == 200, "raw watch HTTP %d", rw.Status)
	c.expect(rw.ContentType == "application/json", "raw watch content type %q, want application/json", rw.ContentType)
	got := kubeEventSummary(rw.Events)
	c.expect(strings.Join(got, ";") == strings.Join(want, ";"), "raw watch from rv: %v, want %v", got, want)
	for _, ev := range rw.Events {
		c.expect(kubeDig(ev, "object", "kind") == "ConfigMap" && kubeDig(ev, "object", "apiVersion") == "v1", "watch event object lacks kind/apiVersion")
	}
	return nil
}

// checkWatchTooOld watches from resourceVersion 1. A real kube-apiserver
// answers in one of three ways, all of which client-go handles: an ERROR
// event carrying a 410 Expired Status (history before its window is gone:
// the usual case on a server that has run for a while), a replay of the
// events since that version (still in its watch cache), or, when its watch
// cache holds everything since it was filled, the current objects as ADDED.
// The check accepts any of them as long as a replay ends in the current
// state; anything else (another error, a stream that never converges)
// breaks client-go's relist logic.
func (s *kubeSuite) checkWatchTooOld(c *kubeCheck) error {
	existing, err := s.cs.CoreV1().ConfigMaps(s.ns).List(c.ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, cm := range existing.Items {
		want[cm.Name] = true
	}
	w, err := s.cs.CoreV1().ConfigMaps(s.ns).Watch(c.ctx, metav1.ListOptions{ResourceVersion: "1"})
	var outcome []string
	if err != nil {
		c.expect(apierrors.IsResourceExpired(err) || apierrors.IsGone(err), "typed watch from rv 1: %v, want 410", err)
		outcome = append(outcome, "request failed with 410")
	} else {
		state := map[string]bool{}
		counts := map[watch.EventType]int{}
		quiet := time.NewTimer(3 * time.Second)
		converged := func() bool {
			if len(state) != len(want) {
				return false
			}
			for n := range want {
				if !state[n] {
					return false
				}
			}
			return true
		}
	loop:
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					break loop
				}
				counts[ev.Type]++
				if ev.Type == watch.Error {
					err := apierrors.FromObject(ev.Object)
					c.expect(apierrors.IsResourceExpired(err) || apierrors.IsGone(err), "typed watch from rv 1: ERROR %v, want 410", err)
					// not in the transcript: whether a real server answers
					// 410 or replays depends on its watch cache's history
					outcome = append(outcome, "ERROR event 410: "+kubeFirstLine(fmt.Sprint(kubeStatusOf(err))))
					break loop
				}
				m, ok := ev.Object.(*corev1.ConfigMap)
				if !ok {
					c.failf("typed watch from rv 1: %s event with a %T", ev.Type, ev.Object)
					break loop
				}
				switch ev.Type {
				case watch.Added, watch.Modified:
					state[m.Name] = true
				case watch.Deleted:
					delete(state, m.Name)
				}
				if converged() {
					// let a replay finish: wait for a short quiet spell
					quiet.Reset(300 * time.Millisecond)
				}
			case <-quiet.C:
				break loop
			}
		}
		w.Stop()
		if counts[watch.Error] == 0 {
			if c.expect(converged(), "typed watch from rv 1: replay ended with %d objects, %d exist (events %v), and no ERROR 410", len(state), len(want), counts) {
				kind := "a replay of the history since rv 1"
				if counts[watch.Modified] == 0 && counts[watch.Deleted] == 0 {
					kind = "the current objects as ADDED"
				}
				outcome = append(outcome, kind)
			}
		}
	}

	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps?resourceVersion=1&resourceVersionMatch=Exact", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	switch r.Status {
	case 410:
		c.expectStatus("list at rv 1, Exact", r, 410, metav1.StatusReasonExpired)
		outcome = append(outcome, "list at rv 1 (Exact): 410")
	case 200:
		outcome = append(outcome, "list at rv 1 (Exact): 200, not compacted yet")
	default:
		c.failf("list at rv 1, Exact: HTTP %d, want 410 (or 200 before compaction)", r.Status)
	}
	c.res.Detail = strings.Join(outcome, "; ")
	return nil
}

func (s *kubeSuite) checkWatchList(c *kubeCheck) error {
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	for _, n := range []string{"wl-1", "wl-2"} {
		if _, err := cms.Create(c.ctx, s.cm(s.name(n), map[string]string{"w": "wl"}), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	sel := kubeRunLabel + "=" + s.run + ",w=wl"
	q := url.Values{"watch": {"true"}, "sendInitialEvents": {"true"}, "resourceVersionMatch": {"NotOlderThan"},
		"allowWatchBookmarks": {"true"}, "labelSelector": {sel}, "timeoutSeconds": {"30"}}
	late := s.name("wl-3")
	created := false
	rw, err := s.rawWatch(c.ctx, "/api/v1/namespaces/"+s.ns+"/configmaps?"+q.Encode(), s.opts.SyncTimeout, func(ev []map[string]any) bool {
		last := ev[len(ev)-1]
		if last["type"] == "BOOKMARK" && kubeDig(last, "object", "metadata", "annotations", "k8s.io/initial-events-end") == "true" && !created {
			created = true
			if _, err := cms.Create(c.ctx, s.cm(late, map[string]string{"w": "wl"}), metav1.CreateOptions{}); err != nil {
				c.failf("create after the bookmark: %v", err)
				return true
			}
		}
		return kubeDig(last, "object", "metadata", "name") == late
	})
	if err != nil {
		return err
	}
	c.record("watch-list stream (json)", map[string]any{"status": rw.Status, "contentType": rw.ContentType, "events": rw.Events})
	got := kubeEventSummary(rw.Events)
	want := []string{"ADDED " + s.name("wl-1"), "ADDED " + s.name("wl-2"), "BOOKMARK", "ADDED " + late}
	c.expect(strings.Join(got, ";") == strings.Join(want, ";"), "watch-list events %v, want %v", got, want)
	for _, ev := range rw.Events {
		if ev["type"] != "BOOKMARK" {
			continue
		}
		obj, _ := ev["object"].(map[string]any)
		c.expect(obj["kind"] == "ConfigMap" && obj["apiVersion"] == "v1", "bookmark object kind/apiVersion %v/%v, want ConfigMap/v1", obj["kind"], obj["apiVersion"])
		rv, _ := kubeDig(obj, "metadata", "resourceVersion").(string)
		c.expect(rv != "", "bookmark without resourceVersion")
	}
	return nil
}

func (s *kubeSuite) checkWatchListInvalid(c *kubeCheck) error {
	base := "/api/v1/namespaces/" + s.ns + "/configmaps?watch=true&sendInitialEvents=true"
	for _, tc := range []struct{ label, query string }{
		{"sendInitialEvents without resourceVersionMatch", "&allowWatchBookmarks=true"},
		{"sendInitialEvents with resourceVersionMatch=Exact", "&allowWatchBookmarks=true&resourceVersionMatch=Exact"},
	} {
		rw, err := s.rawWatch(c.ctx, base+tc.query, 3*time.Second, func([]map[string]any) bool { return true })
		if err != nil {
			return err
		}
		c.expectStatus(tc.label, kubeRaw{Status: rw.Status, ContentType: rw.ContentType, Body: rw.Body}, 422, metav1.StatusReasonInvalid)
	}
	r, err := s.raw(c.ctx, "GET", "/api/v1/namespaces/"+s.ns+"/configmaps?sendInitialEvents=true&resourceVersionMatch=NotOlderThan", kubeAcceptJSON, nil)
	if err != nil {
		return err
	}
	c.expectStatus("sendInitialEvents on a list", r, 422, metav1.StatusReasonInvalid)

	// Accepted, but without bookmarks there is no initial-events-end marker.
	if _, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(c.ctx, s.cm(s.name("wlnb"), map[string]string{"w": "wlnb"}), metav1.CreateOptions{}); err != nil {
		return err
	}
	sel := url.QueryEscape(kubeRunLabel + "=" + s.run + ",w=wlnb")
	rw, err := s.rawWatch(c.ctx, base+"&resourceVersionMatch=NotOlderThan&labelSelector="+sel, time.Second, nil)
	if err != nil {
		return err
	}
	c.record("sendInitialEvents without allowWatchBookmarks", map[string]any{"status": rw.Status, "events": kubeEventSummary(rw.Events)})
	c.expect(rw.Status == 200, "sendInitialEvents without allowWatchBookmarks: HTTP %d, want 200", rw.Status)
	got := strings.Join(kubeEventSummary(rw.Events), ";")
	c.expect(got == "ADDED "+s.name("wlnb"), "sendInitialEvents without allowWatchBookmarks: events %s, want the one ADDED and no bookmark", got)
	return nil
}

func (s *kubeSuite) checkWatchTimeout(c *kubeCheck) error {
	start := time.Now()
	rw, err := s.rawWatch(c.ctx, "/api/v1/namespaces/"+s.ns+"/configmaps?watch=true&timeoutSeconds=1&labelSelector="+url.QueryEscape(kubeRunLabel+"=none"), 10*time.Second, nil)
	if err != nil {
		return err
	}
	took := time.Since(start)
	c.expect(rw.Status == 200, "HTTP %d", rw.Status)
	c.expect(rw.Ended && took < 5*time.Second, "watch with timeoutSeconds=1 ended=%v after %s", rw.Ended, took.Round(time.Millisecond))
	c.record("ended by the server", rw.Ended)
	return nil
}
