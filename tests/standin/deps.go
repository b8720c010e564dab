package main

// The modules the stand-in is built from, pinned in go.mod: Rancher's own
// tunnel library, client-go and kubectl at the versions Rancher ships.
import (
	_ "github.com/gorilla/websocket"
	_ "github.com/rancher/remotedialer"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/runtime"
	_ "k8s.io/cli-runtime/pkg/genericclioptions"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/kubectl/pkg/cmd"
)
