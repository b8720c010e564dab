package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestKubeNormaliserValue(t *testing.T) {
	n := newKubeNormaliser("a1b2c3")
	n.generated("ks-a1b2c3-gen-x7k2p", "ks-a1b2c3-gen-")
	in := map[string]any{
		"metadata": map[string]any{
			"name":              "ks-a1b2c3-gen-x7k2p",
			"uid":               "0cad33bf-21b8-4656-8f57-2b54eb6c04e4",
			"resourceVersion":   "1234",
			"creationTimestamp": "2026-01-02T03:04:05Z",
			"managedFields": []any{
				map[string]any{"manager": "z", "operation": "Update", "time": "2026-01-02T03:04:05Z", "fieldsV1": map[string]any{}},
				map[string]any{"manager": "a", "operation": "Update", "apiVersion": "v1"},
			},
		},
		"message": "too old resource version: 1 (287)",
		"list":    []map[string]any{{"resourceVersion": "0"}}, // typed slices are walked too
	}
	got := n.value(in).(map[string]any)
	md := got["metadata"].(map[string]any)
	want := map[string]any{"name": "ks-<run>-gen-<gen>", "uid": "<uid>", "resourceVersion": "<rv>", "creationTimestamp": "<ts>"}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("metadata.%s = %v, want %v", k, md[k], v)
		}
	}
	mf := md["managedFields"].([]any)
	if len(mf) != 2 || mf[0].(map[string]any)["manager"] != "a" || mf[1].(map[string]any)["time"] != nil {
		t.Errorf("managedFields not reduced and sorted: %v", mf)
	}
	if got["message"] != "too old resource version: <rv>" {
		t.Errorf("message = %q", got["message"])
	}
	if rv := got["list"].([]any)[0].(map[string]any)["resourceVersion"]; rv != "0" {
		t.Errorf("resourceVersion 0 rewritten to %v", rv)
	}
}

func TestKubeNormaliserQuery(t *testing.T) {
	n := newKubeNormaliser("a1b2c3")
	q, _ := url.ParseQuery("watch=true&timeout=8m1s&timeoutSeconds=481&resourceVersion=77&labelSelector=scaleagent.test/run%3Da1b2c3&allowWatchBookmarks=true")
	got := n.query(q)
	want := "allowWatchBookmarks=true&labelSelector=scaleagent.test/run=<run>&resourceVersion=<rv>&timeout=<n>&timeoutSeconds=<n>&watch=true"
	if got != want {
		t.Errorf("query\n got %s\nwant %s", got, want)
	}
	q, _ = url.ParseQuery("timeout=45s")
	if got := n.query(q); got != "timeout=45s" {
		t.Errorf("a request timeout outside a watch is kept: %s", got)
	}
}

func TestKubeCollapseRepeats(t *testing.T) {
	a := KubeHTTPExchange{Method: "GET", Path: "/a", Status: 200}
	b := KubeHTTPExchange{Method: "GET", Path: "/b", Status: 200}
	got := kubeCollapseRepeats([]KubeHTTPExchange{a, a, a, b, a})
	ar := a
	ar.Repeated = true
	want := []KubeHTTPExchange{ar, b, a}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestKubectlNormaliseOutput(t *testing.T) {
	in := "NAMESPACE       NAME                                        READY   AGE\n" +
		"cattle-system   pod/cattle-cluster-agent-cf864cfbc-x7k2p   0/1     3m12s\n"
	want := "NAMESPACE  NAME  READY  AGE\ncattle-system  pod/cattle-cluster-agent-<gen>  0/1  <age>\n"
	if got := kubectlNormaliseOutput(in); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got := kubectlNormaliseOutput(`{"metadata":{"uid":"0cad33bf-21b8-4656-8f57-2b54eb6c04e4","annotations":{"deployment.kubernetes.io/revision":"2"}},"status":{"replicas":2}}`)
	if strings.Contains(got, "status") || strings.Contains(got, "revision") || !strings.Contains(got, `"<uid>"`) {
		t.Errorf("JSON output not normalised: %s", got)
	}
}

// The forwarder splices loopback connections to dialled ones, both ways,
// and Close ends them.
func TestKubectlForwarder(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	dials := 0
	fwd, err := newKubectlForwarder(context.Background(), func(ctx context.Context) (net.Conn, error) {
		dials++
		var d net.Dialer
		return d.DialContext(ctx, "tcp", echo.Addr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", fwd.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo through the forwarder: %q %v", line, err)
	}
	done := make(chan struct{})
	go func() { fwd.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the forwarded connection")
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after Close")
	}
	if dials != 1 {
		t.Errorf("%d dials, want 1", dials)
	}
}

func TestKubectlUserAgent(t *testing.T) {
	if ua := kubectlUserAgent(); !strings.HasPrefix(ua, "kubectl/v1.") {
		t.Errorf("user agent %q", ua)
	}
}
