package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// kubeNormaliser rewrites server answers so that two servers (or two runs
// against one server) produce the same transcript: uids, resourceVersions,
// timestamps, generated names, tokens, hashes and the run id become
// placeholders.
type kubeNormaliser struct {
	runID string
	mu    sync.Mutex
	names map[string]string // generated name -> placeholder
}

func newKubeNormaliser(runID string) *kubeNormaliser {
	return &kubeNormaliser{runID: runID, names: map[string]string{}}
}

// generated registers a server-generated name (generateName) so it is
// rendered as "<prefix><gen>".
func (n *kubeNormaliser) generated(name, prefix string) {
	if name == "" {
		return
	}
	n.mu.Lock()
	n.names[name] = prefix + "<gen>"
	n.mu.Unlock()
}

var (
	kubeReUID   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	kubeReTime  = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	kubeReJWT   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)
	kubeReHash  = regexp.MustCompile(`\b[0-9a-fA-F]{32,}\b`)
	kubeReRVMsg = regexp.MustCompile(`(resource ?version:? )\d+( \(\d+\))?`)
	kubeReRVRec = regexp.MustCompile(`(ResourceVersion in record )\(\d+\)`)
)

// keys whose string values are always replaced.
var kubeNormKeys = map[string]string{
	"resourceVersion":     "<rv>",
	"uid":                 "<uid>",
	"creationTimestamp":   "<ts>",
	"deletionTimestamp":   "<ts>",
	"lastTransitionTime":  "<ts>",
	"lastHeartbeatTime":   "<ts>",
	"lastProbeTime":       "<ts>",
	"lastUpdateTime":      "<ts>",
	"expirationTimestamp": "<ts>",
	"startTime":           "<ts>",
	"time":                "<ts>",
	"buildDate":           "<ts>",
	"gitCommit":           "<hash>",
	"continue":            "<continue>",
	"token":               "<token>",
	"ca.crt":              "<ca.crt>",
	"clusterIP":           "<ip>",
}

// value returns a normalised JSON-like copy of v (typed objects are
// converted through encoding/json first).
func (n *kubeNormaliser) value(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return "<unencodable>"
	}
	var w any
	if json.Unmarshal(b, &w) != nil {
		return "<unencodable>"
	}
	return n.walk("", w)
}

func (n *kubeNormaliser) walk(key string, v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if k == "managedFields" {
				out[k] = n.walk(k, kubeReduceManagedFields(e))
				continue
			}
			out[k] = n.walk(k, e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = n.walk(key, e)
		}
		return out
	case string:
		if repl, ok := kubeNormKeys[key]; ok && t != "" {
			if key == "resourceVersion" && t == "0" {
				return t
			}
			return repl
		}
		return n.str(t)
	default:
		return v
	}
}

// str normalises a free-form string (messages, paths, names).
func (n *kubeNormaliser) str(s string) string {
	if s == "" {
		return s
	}
	s = kubeReJWT.ReplaceAllString(s, "<jwt>")
	s = kubeReUID.ReplaceAllString(s, "<uid>")
	s = kubeReTime.ReplaceAllString(s, "<ts>")
	s = kubeReHash.ReplaceAllString(s, "<hash>")
	s = kubeReRVMsg.ReplaceAllString(s, "${1}<rv>")
	s = kubeReRVRec.ReplaceAllString(s, "${1}(<rv>)")
	n.mu.Lock()
	for name, repl := range n.names {
		if strings.Contains(s, name) {
			s = strings.ReplaceAll(s, name, repl)
		}
	}
	n.mu.Unlock()
	if n.runID != "" {
		s = strings.ReplaceAll(s, n.runID, "<run>")
	}
	return s
}

// query renders a query string with sorted keys and volatile values
// replaced.
func (n *kubeNormaliser) query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range q[k] {
			switch k {
			case "resourceVersion":
				if v != "" && v != "0" {
					v = "<rv>"
				}
			case "continue":
				v = "<continue>"
			case "timeoutSeconds":
				v = "<n>"
			case "timeout":
				if q.Get("watch") == "true" {
					v = "<n>" // a reflector's randomised client timeout
				}
			case "hash":
				v = "<hash>"
			default:
				v = n.str(v)
			}
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, "&")
}

// kubeReduceManagedFields keeps only who managed an object and how, not
// when or which fields.
func kubeReduceManagedFields(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		r := map[string]any{}
		for _, k := range []string{"manager", "operation", "apiVersion", "subresource"} {
			if x, ok := m[k]; ok {
				r[k] = x
			}
		}
		out = append(out, r)
	}
	// who wrote last varies with timing (controllers); order by name
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := out[i].(map[string]any)
		b, _ := out[j].(map[string]any)
		return fmt.Sprint(a["manager"], a["subresource"]) < fmt.Sprint(b["manager"], b["subresource"])
	})
	return out
}

// exchange normalises a recorded request in place.
func (n *kubeNormaliser) exchange(ex *KubeHTTPExchange) {
	ex.Path = n.str(ex.Path)
	if q, err := url.ParseQuery(ex.Query); err == nil {
		ex.Query = n.query(q)
	} else {
		ex.Query = n.str(ex.Query)
	}
	ex.Error = n.str(ex.Error)
}

// kubeCollapseRepeats folds runs of identical consecutive exchanges (a
// client polling) into one marked Repeated, so that the number of polls,
// which depends on timing, does not show in transcripts.
func kubeCollapseRepeats(in []KubeHTTPExchange) []KubeHTTPExchange {
	var out []KubeHTTPExchange
	for _, ex := range in {
		if n := len(out); n > 0 {
			last := out[n-1]
			last.Repeated = false
			if last == ex {
				out[n-1].Repeated = true
				continue
			}
		}
		out = append(out, ex)
	}
	return out
}
