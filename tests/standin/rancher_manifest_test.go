package main

import (
	"encoding/base64"
	"os"
	"regexp"
	"testing"
)

// TestAgentManifestMatchesRecording renders the bootstrap manifest with the
// recorded inputs and compares it with what real Rancher served (the
// credential name is derived from the real token, which the fixture
// replaces).
func TestAgentManifestMatchesRecording(t *testing.T) {
	cases := []struct {
		version                  rancherVersion
		file, url, checksum, uid string
	}{
		{rancher214, "../fixtures/rancher/import-manifest-v2.14.4.yaml", "https://127.0.0.1:10443",
			"ff68d222c91402c337a41ab48e41405c830601599f6db1d56776c7d1234978c8", "edfe7ebd-3516-43d2-9d20-cf30be350ab0"},
		{rancher211, "../fixtures/rancher/import-manifest-v2.11.16.yaml", "https://127.0.0.1:8443",
			"06a383a4be2b9abe3c33d3ae08af154031561da5577c91781e89861cc5ac6904", "82c088c7-76ca-4c15-ae3a-ca24afb3156c"},
	}
	tokenRE := regexp.MustCompile(`token: "([^"]+)"`)
	credRE := regexp.MustCompile(`cattle-credentials-[0-9a-f]{10}`)
	for _, tc := range cases {
		raw, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		want := string(raw)
		m := tokenRE.FindStringSubmatch(want)
		if m == nil {
			t.Fatalf("%s: no token", tc.file)
		}
		token, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := renderAgentManifest(agentManifestInput{
			Version: tc.version, ServerURL: tc.url, Token: string(token),
			CAChecksum: tc.checksum, InstallUUID: tc.uid,
		})
		if err != nil {
			t.Fatal(err)
		}
		want = credRE.ReplaceAllString(want, "cattle-credentials-X")
		got = credRE.ReplaceAllString(got, "cattle-credentials-X")
		if got != want {
			t.Errorf("%s: rendered manifest differs\n--- got ---\n%s", tc.file, got)
		}
	}
}

func TestAgentCredentialName(t *testing.T) {
	// the bootstrap manifest's namespace is empty: "<url>.<token>."
	name := agentCredentialName("https://x", "t", "")
	if len(name) != len("cattle-credentials-")+10 {
		t.Fatalf("bad name %q", name)
	}
	if agentCredentialName("https://x", "t", "c-1") == name {
		t.Fatal("namespace must change the name")
	}
}
