package main

// protovectors prints test vectors for scaleagent's protobuf decoder: the
// request bodies client-go's typed clients send for realistic objects, each
// with the JSON the apiserver derives from them.
//
// The bodies are not built by hand: every object goes through a real
// clientset whose HTTP transport captures the request instead of sending it,
// so the bytes are exactly what client-go puts on the wire (content
// negotiation, the k8s\x00 envelope, the kind the encoder chooses). The
// "json" of each vector is encoding/json applied to the object the
// apimachinery protobuf serializer decodes from those bytes, which is what an
// apiserver holds; the command fails if that differs from the JSON of the
// object the client started with, so the vectors only contain objects whose
// protobuf and JSON forms agree.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

func init() {
	register("protovectors", runProtoVectors)
}

const protobufContentType = "application/vnd.kubernetes.protobuf"

// errCaptured ends every request once its body has been recorded: nothing is
// sent anywhere.
var errCaptured = errors.New("request captured")

type capturedRequest struct {
	method      string
	path        string
	contentType string
	body        []byte
}

type captureTransport struct {
	requests []capturedRequest
}

func (t *captureTransport) RoundTrip(request *http.Request) (*http.Response, error) {
	var body []byte
	if request.Body != nil {
		var err error
		if body, err = io.ReadAll(request.Body); err != nil {
			return nil, err
		}
		request.Body.Close()
	}
	t.requests = append(t.requests, capturedRequest{
		method:      request.Method,
		path:        request.URL.Path,
		contentType: request.Header.Get("Content-Type"),
		body:        body,
	})
	return nil, errCaptured
}

type protoVector struct {
	Name       string          `json:"name"`
	Method     string          `json:"method"`
	Path       string          `json:"path"`
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Protobuf   []byte          `json:"protobuf"`
	JSON       json.RawMessage `json:"json"`
}

func runProtoVectors(args []string) error {
	flags := flag.NewFlagSet("protovectors", flag.ContinueOnError)
	durations := flags.Bool("durations", false,
		"instead print {\"nanoseconds\", \"string\"} lines of metav1.Duration's JSON strings")
	if err := flags.Parse(args); err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	if *durations {
		return printDurations(out)
	}
	transport := &captureTransport{}
	clientset, err := kubernetes.NewForConfig(&rest.Config{
		Host:      "http://127.0.0.1:1",
		Transport: transport,
	})
	if err != nil {
		return err
	}
	for _, write := range vectorWrites() {
		before := len(transport.requests)
		if err := write.send(context.Background(), clientset); !errors.Is(err, errCaptured) {
			return fmt.Errorf("%s: expected the captured request, got %v", write.name, err)
		}
		if len(transport.requests) != before+1 {
			return fmt.Errorf("%s: sent %d requests", write.name, len(transport.requests)-before)
		}
		vector, err := makeVector(write, transport.requests[before])
		if err != nil {
			return fmt.Errorf("%s: %w", write.name, err)
		}
		if err := out.Encode(vector); err != nil {
			return err
		}
	}
	return nil
}

// makeVector decodes a captured body as an apiserver would, and checks that
// the JSON of the result is the JSON of what the client sent.
func makeVector(write vectorWrite, request capturedRequest) (*protoVector, error) {
	if request.contentType != protobufContentType {
		return nil, fmt.Errorf("sent Content-Type %q", request.contentType)
	}
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), protobufContentType)
	if !ok {
		return nil, errors.New("no protobuf serializer")
	}
	decoded, gvk, err := info.Serializer.Decode(request.body, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding the body: %w", err)
	}
	decodedJSON, err := json.Marshal(decoded)
	if err != nil {
		return nil, err
	}
	original := write.object.DeepCopyObject()
	original.GetObjectKind().SetGroupVersionKind(*gvk)
	originalJSON, err := json.Marshal(original)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(decodedJSON, originalJSON) {
		return nil, fmt.Errorf("protobuf round trip changes the JSON:\n sent    %s\n decoded %s",
			originalJSON, decodedJSON)
	}
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return &protoVector{
		Name:       write.name,
		Method:     request.method,
		Path:       request.path,
		APIVersion: apiVersion,
		Kind:       kind,
		Protobuf:   request.body,
		JSON:       decodedJSON,
	}, nil
}

func printDurations(out *json.Encoder) error {
	for _, value := range []time.Duration{
		0, 1, 999, time.Microsecond, 1500 * time.Nanosecond, time.Millisecond,
		1234567 * time.Nanosecond, time.Second, 1500 * time.Millisecond,
		90 * time.Second, time.Hour, 36*time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond,
		-time.Second, -1500 * time.Microsecond, 1<<63 - 1, -1 << 63,
	} {
		line := struct {
			Nanoseconds int64  `json:"nanoseconds"`
			String      string `json:"string"`
		}{int64(value), ""}
		encoded, err := json.Marshal(metav1.Duration{Duration: value})
		if err != nil {
			return err
		}
		if err := json.Unmarshal(encoded, &line.String); err != nil {
			return err
		}
		if err := out.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

type vectorWrite struct {
	name   string
	object runtime.Object
	send   func(context.Context, *kubernetes.Clientset) error
}

// Fixed instants: the vectors must not change from run to run.
var (
	created   = metav1.NewTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	later     = metav1.NewTime(time.Date(2024, 1, 2, 3, 9, 7, 0, time.UTC))
	eventTime = metav1.NewMicroTime(time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC))
)

func pointer[T any](value T) *T { return &value }

func vectorWrites() []vectorWrite {
	const userNamespace = "cattle-impersonation-system"
	const serviceAccountName = "cattle-impersonation-u-b4qkhsnliz"

	tokenSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: serviceAccountName + "-token-",
			Namespace:    userNamespace,
			Labels:       map[string]string{"cattle.io/service-account.name": serviceAccountName},
			Annotations:  map[string]string{"kubernetes.io/service-account.name": serviceAccountName},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "v1",
				Kind:               "ServiceAccount",
				Name:               serviceAccountName,
				UID:                types.UID("2f0b6f5e-5a43-4d1c-9d0e-8f5a3c2b1a00"),
				Controller:         pointer(true),
				BlockOwnerDeletion: pointer(false),
			}},
		},
		Immutable:  pointer(false),
		Type:       corev1.SecretTypeServiceAccountToken,
		Data:       map[string][]byte{"extra": {0, 1, 2, 0xfe, 0xff}, "empty": {}},
		StringData: map[string]string{"note": "ünïcode ☃", "blank": ""},
	}
	serviceAccount := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{
			Name:            serviceAccountName,
			Namespace:       userNamespace,
			ResourceVersion: "4711",
			Annotations:     map[string]string{"rancher.io/service-account.secret-ref": userNamespace + "/" + serviceAccountName + "-token-x7k2p"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "rbac.authorization.k8s.io/v1",
				Kind:       "ClusterRole",
				Name:       serviceAccountName,
				UID:        types.UID("0c3d2e1f-0000-4000-8000-000000000001"),
			}},
		},
		Secrets:                      []corev1.ObjectReference{{Name: serviceAccountName + "-token-x7k2p"}},
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "registry"}},
		AutomountServiceAccountToken: pointer(false),
	}
	tokenRequest := &authenticationv1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: serviceAccountName, Namespace: userNamespace},
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{"https://kubernetes.default.svc.cluster.local", "rancher"},
			ExpirationSeconds: pointer(int64(600)),
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				Kind:       "Secret",
				APIVersion: "v1",
				Name:       "bound",
				UID:        types.UID("9a8b7c6d-0000-4000-8000-000000000002"),
			},
		},
	}
	clusterRole := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{
			Name:   serviceAccountName,
			Labels: map[string]string{"authz.cluster.cattle.io/impersonator": "true"},
		},
		Rules: []rbacv1.PolicyRule{
			{
				Verbs:         []string{"impersonate"},
				APIGroups:     []string{""},
				Resources:     []string{"users"},
				ResourceNames: []string{"u-b4qkhsnliz"},
			},
			{
				Verbs:         []string{"impersonate"},
				APIGroups:     []string{"authentication.k8s.io"},
				Resources:     []string{"userextras/principalid", "userextras/username"},
				ResourceNames: []string{"local://u-b4qkhsnliz", "admin"},
			},
			{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/version"}},
		},
		AggregationRule: &rbacv1.AggregationRule{
			ClusterRoleSelectors: []metav1.LabelSelector{{
				MatchLabels: map[string]string{"rbac.example.com/aggregate-to-view": "true"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key:      "tier",
					Operator: metav1.LabelSelectorOpIn,
					Values:   []string{"a", "b"},
				}, {
					Key:      "legacy",
					Operator: metav1.LabelSelectorOpDoesNotExist,
				}},
			}},
		},
	}
	clusterRoleBinding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: serviceAccountName},
		Subjects: []rbacv1.Subject{{
			Kind:      "ServiceAccount",
			Name:      serviceAccountName,
			Namespace: userNamespace,
		}},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: serviceAccountName},
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "secret-reader", Namespace: "default"},
		Rules: []rbacv1.PolicyRule{{
			Verbs:     []string{"get", "list", "watch"},
			APIGroups: []string{""},
			Resources: []string{"secrets"},
		}},
	}
	emptyRole := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: "default"}}
	roleBinding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read-secrets", Namespace: "default"},
		Subjects: []rbacv1.Subject{
			{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "jane"},
			{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:authenticated"},
		},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "secret-reader"},
	}
	namespace := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{
			Name:              "cattle-system",
			UID:               types.UID("6e1f0c9a-0000-4000-8000-000000000003"),
			ResourceVersion:   "12",
			CreationTimestamp: created,
			DeletionTimestamp: &later,
			Labels:            map[string]string{"kubernetes.io/metadata.name": "cattle-system"},
			Annotations: map[string]string{
				"cattle.io/status":                          `{"Conditions":[{"Type":"ResourceQuotaInit","Status":"True"}]}`,
				"lifecycle.cattle.io/create.namespace-auth": "true",
			},
			Finalizers: []string{"controller.cattle.io/namespace-auth"},
		},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status: corev1.NamespaceStatus{
			Phase: corev1.NamespaceTerminating,
			Conditions: []corev1.NamespaceCondition{{
				Type:               corev1.NamespaceDeletionContentFailure,
				Status:             corev1.ConditionFalse,
				LastTransitionTime: later,
				Reason:             "ContentDeleted",
				Message:            "All content successfully deleted",
			}},
		},
	}
	configMap := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "cattle-system"},
		Immutable:  pointer(true),
		Data:       map[string]string{"a.yaml": "key: value\n", "empty": ""},
		BinaryData: map[string][]byte{"blob": []byte("\x00\x01binary")},
	}

	cleanupJob := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "cattle-cleanup-",
			Namespace:    "default",
			Labels:       map[string]string{"cattle.io/creator": "norman"},
		},
		Spec: batchv1.JobSpec{
			Parallelism:             pointer(int32(1)),
			Completions:             pointer(int32(1)),
			ActiveDeadlineSeconds:   pointer(int64(3600)),
			BackoffLimit:            pointer(int32(0)),
			TTLSecondsAfterFinished: pointer(int32(0)),
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action: batchv1.PodFailurePolicyActionFailJob,
				OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					Operator: batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values:   []int32{1, 2, 42, -3},
				},
			}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": "cattle-cleanup"}},
				Spec:       fullPodSpec(),
			},
		},
	}

	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet-agent", Namespace: "cattle-fleet-system"},
		Spec: appsv1.DeploymentSpec{
			Replicas: pointer(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "fleet-agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "fleet-agent"}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "fleet-agent",
					Containers: []corev1.Container{{
						Name:  "fleet-agent",
						Image: "rancher/fleet-agent:v0.12.0",
						Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
					}},
				},
			},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: pointer(intstr.FromInt32(0)),
					MaxSurge:       pointer(intstr.FromString("25%")),
				},
			},
			RevisionHistoryLimit:    pointer(int32(10)),
			ProgressDeadlineSeconds: pointer(int32(600)),
		},
	}
	controllerRevision := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet-agent-7d9f8b", Namespace: "cattle-fleet-system"},
		Data:       runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"x"}}}},"n":[1,2.5,null,true]}`)},
		Revision:   3,
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              "cattle-cluster-agent-5d8c9b7f4-abcde",
			Namespace:         "cattle-system",
			UID:               types.UID("11111111-0000-4000-8000-000000000004"),
			ResourceVersion:   "98765",
			Generation:        1,
			CreationTimestamp: created,
			Labels:            map[string]string{"app": "cattle-cluster-agent", "pod-template-hash": "5d8c9b7f4"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "cattle-cluster-agent-5d8c9b7f4",
				UID: types.UID("22222222-0000-4000-8000-000000000005"), Controller: pointer(true), BlockOwnerDeletion: pointer(true),
			}},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager:    "kube-controller-manager",
				Operation:  metav1.ManagedFieldsOperationUpdate,
				APIVersion: "v1",
				Time:       &created,
				FieldsType: "FieldsV1",
				FieldsV1:   &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}`)},
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:           "node-1",
			ServiceAccountName: "cattle",
			Containers: []corev1.Container{{
				Name:                     "cluster-register",
				Image:                    "rancher/rancher-agent:v2.14.4",
				ImagePullPolicy:          corev1.PullIfNotPresent,
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
			RestartPolicy: corev1.RestartPolicyAlways,
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: later},
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: created},
			},
			HostIP:    "10.0.0.11",
			HostIPs:   []corev1.HostIP{{IP: "10.0.0.11"}},
			PodIP:     "10.42.0.7",
			PodIPs:    []corev1.PodIP{{IP: "10.42.0.7"}, {IP: "fd00::7"}},
			StartTime: &created,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name:  "cluster-register",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: later}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 137, Signal: 9, Reason: "OOMKilled", StartedAt: created, FinishedAt: later,
				}},
				Ready:        true,
				RestartCount: 2,
				Image:        "docker.io/rancher/rancher-agent:v2.14.4",
				ImageID:      "docker.io/rancher/rancher-agent@sha256:0123456789abcdef",
				ContainerID:  "containerd://abcdef",
				Started:      pointer(true),
			}},
			QOSClass: corev1.PodQOSBestEffort,
		},
	}

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:              "node-1",
			CreationTimestamp: created,
			Labels:            map[string]string{"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": "true"},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:    "10.42.0.0/24",
			PodCIDRs:   []string{"10.42.0.0/24", "fd00:42::/64"},
			ProviderID: "k3s://node-1",
			Taints: []corev1.Taint{
				{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
				{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute, TimeAdded: &later},
			},
		},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:              resource.MustParse("4"),
				corev1.ResourceMemory:           resource.MustParse("16318480Ki"),
				corev1.ResourcePods:             resource.MustParse("110"),
				corev1.ResourceEphemeralStorage: resource.MustParse("1.5Gi"),
			},
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("3900m"),
				corev1.ResourceMemory: resource.MustParse("15Gi"),
				"hugepages-2Mi":       resource.MustParse("0"),
			},
			Phase: corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{
				Type:               corev1.NodeReady,
				Status:             corev1.ConditionTrue,
				LastHeartbeatTime:  later,
				LastTransitionTime: created,
				Reason:             "KubeletReady",
				Message:            "kubelet is posting ready status",
			}},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "10.0.0.11"},
				{Type: corev1.NodeHostName, Address: "node-1"},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: "m", SystemUUID: "s", BootID: "b",
				KernelVersion: "6.8.0", OSImage: "Ubuntu 24.04", ContainerRuntimeVersion: "containerd://2.0.5",
				KubeletVersion: "v1.33.5+k3s1", KubeProxyVersion: "", OperatingSystem: "linux", Architecture: "amd64",
			},
			Images: []corev1.ContainerImage{{Names: []string{"rancher/rancher-agent:v2.14.4"}, SizeBytes: 1 << 40}},
		},
	}

	coreEvent := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1.17a8f", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Node", Name: "node-1", UID: types.UID("node-1"), APIVersion: "v1", FieldPath: "spec",
		},
		Reason:              "NodeReady",
		Message:             "Node node-1 status is now: NodeReady",
		Source:              corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp:      created,
		LastTimestamp:       later,
		Count:               3,
		Type:                corev1.EventTypeNormal,
		EventTime:           eventTime,
		Series:              &corev1.EventSeries{Count: 3, LastObservedTime: eventTime},
		ReportingController: "kubelet",
		ReportingInstance:   "kubelet-node-1",
	}
	event := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "pod.17a8f", Namespace: "default"},
		EventTime:           eventTime,
		ReportingController: "scaleagent.example/controller",
		ReportingInstance:   "controller-0",
		Action:              "Scheduled",
		Reason:              "Scheduled",
		Regarding:           corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0"},
		Note:                "Successfully assigned default/web-0 to node-1",
		Type:                "Normal",
	}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       pointer("node-1"),
			LeaseDurationSeconds: pointer(int32(40)),
			AcquireTime:          &eventTime,
			RenewTime:            pointer(metav1.NewMicroTime(time.Date(2024, 1, 2, 3, 4, 45, 1000, time.UTC))),
			LeaseTransitions:     pointer(int32(0)),
		},
	}
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "cattle-cluster-agent", Namespace: "cattle-system"},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(80)},
				{Name: "https-internal", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromString("https")},
			},
			Selector:       map[string]string{"app": "cattle-cluster-agent"},
			Type:           corev1.ServiceTypeClusterIP,
			IPFamilyPolicy: pointer(corev1.IPFamilyPolicySingleStack),
		},
	}
	ingress := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: pointer("nginx"),
			Rules: []networkingv1.IngressRule{{
				Host: "example.test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: pointer(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
	disruptionBudget := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: pointer(intstr.FromString("50%")),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
		Status: policyv1.PodDisruptionBudgetStatus{
			DisruptedPods:  map[string]metav1.Time{"web-0": later},
			CurrentHealthy: 2,
		},
	}
	storageClass := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: "local-path"},
		Provisioner:          "rancher.io/local-path",
		Parameters:           map[string]string{"nodePath": "/opt/local-path"},
		ReclaimPolicy:        pointer(corev1.PersistentVolumeReclaimDelete),
		AllowVolumeExpansion: pointer(false),
		VolumeBindingMode:    pointer(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	autoscaler := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
			MinReplicas:    pointer(int32(1)),
			MaxReplicas:    5,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{
						Type:         autoscalingv2.AverageValueMetricType,
						AverageValue: pointer(resource.MustParse("512Mi")),
					},
				},
			}},
		},
	}
	accessReview := &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: "default", Verb: "get", Group: "", Resource: "secrets", Name: "x",
			},
			User:   "u-b4qkhsnliz",
			Groups: []string{"system:authenticated", "system:cattle:authenticated"},
			Extra: map[string]authorizationv1.ExtraValue{
				"principalid": {"local://u-b4qkhsnliz"},
				"empty":       {},
			},
			UID: "b4qkhsnliz",
		},
	}
	deleteOptions := metav1.DeleteOptions{
		GracePeriodSeconds: pointer(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: pointer(types.UID("2f0b6f5e")), ResourceVersion: pointer("")},
		PropagationPolicy:  pointer(metav1.DeletePropagationBackground),
		DryRun:             []string{metav1.DryRunAll},
	}

	return []vectorWrite{
		{"impersonation token secret", tokenSecret, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().Secrets(userNamespace).Create(ctx, tokenSecret, metav1.CreateOptions{})
			return err
		}},
		{"service account update", serviceAccount, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().ServiceAccounts(userNamespace).Update(ctx, serviceAccount, metav1.UpdateOptions{})
			return err
		}},
		{"token request", tokenRequest, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().ServiceAccounts(userNamespace).CreateToken(ctx, serviceAccountName, tokenRequest, metav1.CreateOptions{})
			return err
		}},
		{"cluster role", clusterRole, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.RbacV1().ClusterRoles().Create(ctx, clusterRole, metav1.CreateOptions{})
			return err
		}},
		{"cluster role binding", clusterRoleBinding, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, clusterRoleBinding, metav1.CreateOptions{})
			return err
		}},
		{"role", role, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{})
			return err
		}},
		{"role without rules", emptyRole, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.RbacV1().Roles("default").Create(ctx, emptyRole, metav1.CreateOptions{})
			return err
		}},
		{"role binding", roleBinding, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.RbacV1().RoleBindings("default").Create(ctx, roleBinding, metav1.CreateOptions{})
			return err
		}},
		{"terminating namespace", namespace, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().Namespaces().Update(ctx, namespace, metav1.UpdateOptions{})
			return err
		}},
		{"config map", configMap, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().ConfigMaps("cattle-system").Create(ctx, configMap, metav1.CreateOptions{})
			return err
		}},
		{"cleanup job", cleanupJob, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.BatchV1().Jobs("default").Create(ctx, cleanupJob, metav1.CreateOptions{})
			return err
		}},
		{"deployment", deployment, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.AppsV1().Deployments("cattle-fleet-system").Create(ctx, deployment, metav1.CreateOptions{})
			return err
		}},
		{"controller revision", controllerRevision, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.AppsV1().ControllerRevisions("cattle-fleet-system").Create(ctx, controllerRevision, metav1.CreateOptions{})
			return err
		}},
		{"pod status", pod, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().Pods("cattle-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{})
			return err
		}},
		{"node", node, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
			return err
		}},
		{"core event", coreEvent, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().Events("default").Create(ctx, coreEvent, metav1.CreateOptions{})
			return err
		}},
		{"events.k8s.io event", event, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.EventsV1().Events("default").Create(ctx, event, metav1.CreateOptions{})
			return err
		}},
		{"lease", lease, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoordinationV1().Leases("kube-node-lease").Update(ctx, lease, metav1.UpdateOptions{})
			return err
		}},
		{"service", service, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.CoreV1().Services("cattle-system").Create(ctx, service, metav1.CreateOptions{})
			return err
		}},
		{"ingress", ingress, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.NetworkingV1().Ingresses("default").Create(ctx, ingress, metav1.CreateOptions{})
			return err
		}},
		{"pod disruption budget", disruptionBudget, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, disruptionBudget, metav1.UpdateOptions{})
			return err
		}},
		{"storage class", storageClass, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.StorageV1().StorageClasses().Create(ctx, storageClass, metav1.CreateOptions{})
			return err
		}},
		{"horizontal pod autoscaler", autoscaler, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, autoscaler, metav1.CreateOptions{})
			return err
		}},
		{"subject access review", accessReview, func(ctx context.Context, c *kubernetes.Clientset) error {
			_, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, accessReview, metav1.CreateOptions{})
			return err
		}},
		{"core delete options", &deleteOptions, func(ctx context.Context, c *kubernetes.Clientset) error {
			return c.CoreV1().Secrets(userNamespace).Delete(ctx, "gone", deleteOptions)
		}},
		{"rbac delete options", &deleteOptions, func(ctx context.Context, c *kubernetes.Clientset) error {
			return c.RbacV1().ClusterRoles().Delete(ctx, "gone", deleteOptions)
		}},
	}
}

// fullPodSpec is a pod template that uses most of what a Job's pod can say.
func fullPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName:            "cattle-cleanup-sa",
		AutomountServiceAccountToken:  pointer(true),
		RestartPolicy:                 corev1.RestartPolicyOnFailure,
		TerminationGracePeriodSeconds: pointer(int64(30)),
		DNSPolicy:                     corev1.DNSClusterFirst,
		NodeSelector:                  map[string]string{"kubernetes.io/os": "linux"},
		PriorityClassName:             "system-cluster-critical",
		Priority:                      pointer(int32(-5)),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsUser:          pointer(int64(1000)),
			RunAsGroup:         pointer(int64(0)),
			FSGroup:            pointer(int64(2000)),
			SupplementalGroups: []int64{1, 2, 300000},
			SeccompProfile:     &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		InitContainers: []corev1.Container{{
			Name:    "init",
			Image:   "busybox:1.36",
			Command: []string{"sh", "-c", "true"},
		}},
		Containers: []corev1.Container{{
			Name:       "cleanup",
			Image:      "rancher/rancher-agent:v2.14.4",
			Command:    []string{"/usr/bin/agent"},
			Args:       []string{"--cleanup", "--verbose"},
			WorkingDir: "/",
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP, HostIP: "127.0.0.1"},
			},
			EnvFrom: []corev1.EnvFromSource{{
				Prefix:       "CATTLE_",
				ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Optional: pointer(true)},
			}},
			Env: []corev1.EnvVar{
				{Name: "CLEANUP", Value: "true"},
				{Name: "EMPTY"},
				{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}},
				{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
					SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "cattle-credentials"},
						Key:                  "token",
						Optional:             pointer(false),
					},
				}},
				{Name: "LIMIT", ValueFrom: &corev1.EnvVarSource{
					ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")},
				}},
			},
			Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("500m"),
					corev1.ResourceMemory: resource.MustParse("128Mi"),
				},
				Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("0.1"),
					corev1.ResourceMemory: resource.MustParse("64M"),
				},
			},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "credentials", MountPath: "/cattle-credentials", ReadOnly: true},
				{Name: "scratch", MountPath: "/tmp", SubPath: "cleanup"},
			},
			LivenessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/healthz", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP,
					HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}},
				}},
				InitialDelaySeconds: 10,
				PeriodSeconds:       30,
				FailureThreshold:    3,
			},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
				SuccessThreshold: 1,
			},
			Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "5"}}}},
			SecurityContext: &corev1.SecurityContext{
				Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}},
				Privileged:               pointer(false),
				RunAsNonRoot:             pointer(true),
				ReadOnlyRootFilesystem:   pointer(true),
				AllowPrivilegeEscalation: pointer(false),
			},
			ImagePullPolicy: corev1.PullAlways,
			Stdin:           false,
			TTY:             false,
		}},
		Volumes: []corev1.Volume{
			{Name: "credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "cattle-credentials", DefaultMode: pointer(int32(0o400)),
			}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				Medium: corev1.StorageMediumMemory, SizeLimit: pointer(resource.MustParse("1Gi")),
			}}},
			{Name: "empty", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
				Items:                []corev1.KeyToPath{{Key: "a.yaml", Path: "a.yaml", Mode: pointer(int32(0o644))}},
			}}},
			{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: "rancher", ExpirationSeconds: pointer(int64(3607)), Path: "token",
				}}},
			}}},
		},
		Tolerations: []corev1.Toleration{
			{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
			{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpEqual, Value: "x",
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: pointer(int64(300))},
			{Operator: corev1.TolerationOpExists},
		},
		Affinity: &corev1.Affinity{
			NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: "kubernetes.io/os", Operator: corev1.NodeSelectorOpIn, Values: []string{"linux"},
					}}}},
				},
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
					Weight: 100,
					Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: "node-role.kubernetes.io/control-plane", Operator: corev1.NodeSelectorOpExists,
					}}},
				}},
			},
			PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 1,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": "cattle-cleanup"}},
						TopologyKey:   "kubernetes.io/hostname",
					},
				}},
			},
		},
		HostAliases: []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"rancher.example"}}},
	}
}
