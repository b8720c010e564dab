# -*- test-case-name: tests.test_kube_table -*-
"""
Render objects as the C{meta.k8s.io/v1} C{Table} that kubectl and steve ask
for (C{Accept: application/json;as=Table;v=v1;g=meta.k8s.io}), with the
columns and cells the API server's printers produce.

The printers follow Kubernetes v1.28's C{pkg/printers/internalversion}.  A
server always renders the wide form: every column, the C{-o wide} ones with
priority 1.  Resources without a printer get the API server's default
C{Name}/C{Created At} table; custom resources get their CRD's
C{additionalPrinterColumns}.  Column descriptions are the API's field
documentation, as the real server sends them.

Approximations, each noted where it is made: quantities are printed as the
object spells them rather than re-canonicalised, and the JSONPath evaluator
for CRD columns supports the subset CRDs use in practice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from scaleagent.kube.resources import ResourceType

TABLE_API_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

Cells = list[Any]
RowFunction = Callable[[Mapping[str, Any], datetime], Cells]
ConditionFunction = Callable[[Mapping[str, Any]], "list[dict[str, Any]] | None"]


# The API's field documentation, which the API server sends as column
# descriptions (k8s.io/api's generated SwaggerDoc, keyed Type.field).  The
# printers quote the documentation of older API versions (extensions/v1beta1,
# batch/v1beta1, ...) exactly as Kubernetes' printers do.
_DESCRIPTIONS: dict[str, str] = {
    'CSIDriverSpec.attachRequired': (
        'attachRequired indicates this CSI volume driver requires an attach '
        'operation (because it implements the CSI ControllerPublishVolume() '
        'method), and that the Kubernetes attach detach controller should call '
        'the attach volume interface which checks the volumeattachment status '
        'and waits until the volume is attached before proceeding to mounting. '
        'The CSI external-attacher coordinates with CSI volume driver and '
        'updates the volumeattachment status when the attach operation is '
        'complete. If the value is specified to false, the attach operation '
        'will be skipped. Otherwise the attach operation will be called.\n\nThis '
        'field is immutable.'
    ),
    'CSIDriverSpec.podInfoOnMount': (
        'podInfoOnMount indicates this CSI volume driver requires additional '
        'pod information (like podName, podUID, etc.) during mount operations, '
        'if set to true. If set to false, pod information will not be passed on'
        ' mount. Default is false.\n\nThe CSI driver specifies podInfoOnMount as '
        'part of driver deployment. If true, Kubelet will pass pod information '
        'as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver '
        'is responsible for parsing and validating the information passed in as'
        ' VolumeContext.\n\nThe following VolumeContext will be passed if '
        'podInfoOnMount is set to true. This list might grow, but the prefix '
        'will be used. "csi.storage.k8s.io/pod.name": pod.Name '
        '"csi.storage.k8s.io/pod.namespace": pod.Namespace '
        '"csi.storage.k8s.io/pod.uid": string(pod.UID) '
        '"csi.storage.k8s.io/ephemeral": "true" if the volume is an ephemeral '
        'inline volume\n                                defined by a '
        'CSIVolumeSource, otherwise "false"\n\n"csi.storage.k8s.io/ephemeral" is '
        'a new feature in Kubernetes 1.16. It is only required for drivers '
        'which support both the "Persistent" and "Ephemeral" '
        'VolumeLifecycleMode. Other drivers can leave pod info disabled and/or '
        "ignore this field. As Kubernetes 1.15 doesn't support this field, "
        'drivers can only support one mode when deployed on such a cluster and '
        'the deployment determines which mode that is, for example via a '
        'command line parameter of the driver.\n\nThis field was immutable in '
        'Kubernetes < 1.29 and now is mutable.'
    ),
    'CSIDriverSpec.requiresRepublish': (
        'requiresRepublish indicates the CSI driver wants `NodePublishVolume` '
        'being periodically called to reflect any possible change in the '
        'mounted volume. This field defaults to false.\n\nNote: After a '
        'successful initial NodePublishVolume call, subsequent calls to '
        'NodePublishVolume should only update the contents of the volume. New '
        'mount points will not be seen by a running container.'
    ),
    'CSIDriverSpec.storageCapacity': (
        'storageCapacity indicates that the CSI volume driver wants pod '
        'scheduling to consider the storage capacity that the driver deployment'
        ' will report by creating CSIStorageCapacity objects with capacity '
        'information, if set to true.\n\nThe check can be enabled immediately '
        'when deploying a driver. In that case, provisioning new volumes with '
        'late binding will pause until the driver deployment has published some'
        ' suitable CSIStorageCapacity object.\n\nAlternatively, the driver can be'
        ' deployed with the field unset or false and it can be flipped later '
        'when storage capacity information has been published.\n\nThis field was '
        'immutable in Kubernetes <= 1.22 and now is mutable.'
    ),
    'CSIDriverSpec.tokenRequests': (
        "tokenRequests indicates the CSI driver needs pods' service account "
        'tokens it is mounting volume for to do necessary authentication. '
        'Kubelet will pass the tokens in VolumeContext in the CSI '
        'NodePublishVolume calls. The CSI driver should parse and validate the '
        'following VolumeContext: "csi.storage.k8s.io/serviceAccount.tokens": {'
        '\n  "<audience>": {\n    "token": <token>,\n    "expirationTimestamp": '
        '<expiration timestamp in RFC3339>,\n  },\n  ...\n}\n\nNote: Audience in '
        'each TokenRequest should be different and at most one token is empty '
        'string. To receive a new token after expiry, RequiresRepublish can be '
        'used to trigger NodePublishVolume periodically.'
    ),
    'CSIDriverSpec.volumeLifecycleModes': (
        'volumeLifecycleModes defines what kind of volumes this CSI volume '
        'driver supports. The default if the list is empty is "Persistent", '
        'which is the usage defined by the CSI specification and implemented in'
        ' Kubernetes via the usual PV/PVC mechanism.\n\nThe other mode is '
        '"Ephemeral". In this mode, volumes are defined inline inside the pod '
        'spec with CSIVolumeSource and their lifecycle is tied to the lifecycle'
        ' of that pod. A driver has to be aware of this because it is only '
        'going to get a NodePublishVolume call for such a volume.\n\nFor more '
        'information about implementing this mode, see '
        'https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A '
        'driver can support one or more of these modes and more modes may be '
        'added in the future.\n\nThis field is beta. This field is immutable.'
    ),
    'CSIStorageCapacity.capacity': (
        'capacity is the value reported by the CSI driver in its '
        'GetCapacityResponse for a GetCapacityRequest with topology and '
        'parameters that match the previous fields.\n\nThe semantic is currently '
        '(CSI spec 1.2) defined as: The available capacity, in bytes, of the '
        'storage that can be used to provision volumes. If not set, that '
        'information is currently unavailable.'
    ),
    'CSIStorageCapacity.storageClassName': (
        'storageClassName represents the name of the StorageClass that the '
        'reported capacity applies to. It must meet the same requirements as '
        'the name of a StorageClass object (non-empty, DNS subdomain). If that '
        'object no longer exists, the CSIStorageCapacity object is obsolete and'
        ' should be removed by its creator. This field is immutable.'
    ),
    'CertificateSigningRequestSpec.expirationSeconds': (
        'expirationSeconds is the requested duration of validity of the issued '
        'certificate. The certificate signer may issue a certificate with a '
        'different validity duration so a client must check the delta between '
        'the notBefore and and notAfter fields in the issued certificate to '
        'determine the actual duration.\n\nThe v1.22+ in-tree implementations of '
        'the well-known Kubernetes signers will honor this field as long as the'
        ' requested duration is not greater than the maximum duration they will'
        ' honor per the --cluster-signing-duration CLI flag to the Kubernetes '
        'controller manager.\n\nCertificate signers may not honor this field for '
        'various reasons:\n\n  1. Old signer that is unaware of the field (such '
        'as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose '
        'configured maximum is shorter than the requested duration\n  3. Signer '
        'whose configured minimum is longer than the requested duration\n\nThe '
        'minimum valid value for expirationSeconds is 600, i.e. 10 minutes.'
    ),
    'CertificateSigningRequestSpec.request': (
        'Base64-encoded PKCS#10 CSR data'
    ),
    'CertificateSigningRequestSpec.signerName': (
        'Requested signer for the request. It is a qualified name in the form: '
        "`scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's "
        'a kubelet client certificate, it is assigned\n    '
        '"kubernetes.io/kube-apiserver-client-kubelet".\n 2. If it\'s a kubelet '
        'serving certificate, it is assigned\n    '
        '"kubernetes.io/kubelet-serving".\n 3. Otherwise, it is assigned '
        '"kubernetes.io/legacy-unknown".\nDistribution of trust for signers '
        'happens out of band. You can select on this field using '
        '`spec.signerName`.'
    ),
    'CertificateSigningRequestStatus.conditions': (
        'Conditions applied to the request, such as approval or denial.'
    ),
    'ClusterRoleBinding.roleRef': (
        'RoleRef can only reference a ClusterRole in the global namespace. If '
        'the RoleRef cannot be resolved, the Authorizer must return an error.'
    ),
    'ConfigMap.data': (
        'Data contains the configuration data. Each key must consist of '
        "alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte "
        'sequences must use the BinaryData field. The keys stored in Data must '
        'not overlap with the keys in the BinaryData field, this is enforced '
        'during validation process.'
    ),
    'ControllerRevision.revision': (
        'revision indicates the revision of the state represented by Data.'
    ),
    'CronJobSpec.schedule': (
        'The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.'
    ),
    'CronJobSpec.suspend': (
        'This flag tells the controller to suspend subsequent executions, it '
        'does not apply to already started executions.  Defaults to false.'
    ),
    'CronJobStatus.active': (
        'A list of pointers to currently running jobs.'
    ),
    'CronJobStatus.lastScheduleTime': (
        'Information when was the last time the job was successfully scheduled.'
    ),
    'DaemonSetSpec.selector': (
        'A label query over pods that are managed by the daemon set. Must match'
        ' in order to be controlled. If empty, defaulted to labels on Pod '
        'template. More info: https://kubernetes.io/docs/concepts/overview/work'
        'ing-with-objects/labels/#label-selectors'
    ),
    'DaemonSetStatus.currentNumberScheduled': (
        'The number of nodes that are running at least 1 daemon pod and are '
        'supposed to run the daemon pod. More info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/'
    ),
    'DaemonSetStatus.desiredNumberScheduled': (
        'The total number of nodes that should be running the daemon pod '
        '(including nodes correctly running the daemon pod). More info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/'
    ),
    'DaemonSetStatus.numberAvailable': (
        'The number of nodes that should be running the daemon pod and have one'
        ' or more of the daemon pod running and available (ready for at least '
        'spec.minReadySeconds)'
    ),
    'DaemonSetStatus.numberReady': (
        'The number of nodes that should be running the daemon pod and have one'
        ' or more of the daemon pod running and ready.'
    ),
    'DaemonSetStatus.updatedNumberScheduled': (
        'The total number of nodes that are running updated daemon pod'
    ),
    'DeploymentSpec.selector': (
        'Label selector for pods. Existing ReplicaSets whose pods are selected '
        'by this will be the ones affected by this deployment.'
    ),
    # Worded as before Kubernetes 1.33 (which added "non-terminating").
    'DeploymentStatus.availableReplicas': (
        'Total number of available pods (ready for at least minReadySeconds) '
        'targeted by this deployment.'
    ),
    'DeploymentStatus.updatedReplicas': (
        'Total number of non-terminated pods targeted by this deployment that '
        'have the desired template spec.'
    ),
    'EndpointSlice.addressType': (
        'addressType specifies the type of address carried by this '
        'EndpointSlice. All addresses in this slice must be the same type. This'
        ' field is immutable after creation. The following address types are '
        'currently supported: * IPv4: Represents an IPv4 Address. * IPv6: '
        'Represents an IPv6 Address. * FQDN: Represents a Fully Qualified '
        'Domain Name.'
    ),
    'EndpointSlice.endpoints': (
        'endpoints is a list of unique endpoints in this slice. Each slice may '
        'include a maximum of 1000 endpoints.'
    ),
    'EndpointSlice.ports': (
        'ports specifies the list of network ports exposed by each endpoint in '
        'this slice. Each port must have a unique name. When ports is empty, it'
        ' indicates that there are no defined ports. When a port is defined '
        'with a nil port value, it indicates "all ports". Each slice may '
        'include a maximum of 100 ports.'
    ),
    'Endpoints.subsets': (
        'The set of all endpoints is the union of all subsets. Addresses are '
        'placed into subsets according to the IPs they share. A single address '
        'with multiple ports, some of which are ready and some of which are not'
        ' (because they come from different containers) will result in the '
        'address being displayed in different subsets for the different ports. '
        'No address will appear in both Addresses and NotReadyAddresses in the '
        'same subset. Sets of addresses and ports that comprise a service.'
    ),
    'Event.count': (
        'The number of times this event has occurred.'
    ),
    'Event.firstTimestamp': (
        'The time at which the event was first recorded. (Time of server '
        'receipt is in TypeMeta.)'
    ),
    'Event.involvedObject': (
        'The object that this event is about.'
    ),
    'Event.lastTimestamp': (
        'The time at which the most recent occurrence of this event was '
        'recorded.'
    ),
    'Event.message': (
        'A human-readable description of the status of this operation.'
    ),
    'Event.reason': (
        'This should be a short, machine understandable string that gives the '
        "reason for the transition into the object's current status."
    ),
    'Event.source': (
        'The component reporting this event. Should be a short machine '
        'understandable string.'
    ),
    'Event.type': (
        'Type of this event (Normal, Warning), new types could be added in the '
        'future'
    ),
    'FlowSchemaSpec.distinguisherMethod': (
        '`distinguisherMethod` defines how to compute the flow distinguisher '
        'for requests that match this schema. `nil` specifies that the '
        'distinguisher is disabled and thus will always be the empty string.'
    ),
    'FlowSchemaSpec.matchingPrecedence': (
        '`matchingPrecedence` is used to choose among the FlowSchemas that '
        'match a given request. The chosen FlowSchema is among those with the '
        'numerically lowest (which we take to be logically highest) '
        'MatchingPrecedence.  Each MatchingPrecedence value must be ranged in '
        '[1,10000]. Note that if the precedence is not specified, it will be '
        'set to 1000 as default.'
    ),
    'HorizontalPodAutoscalerSpec.maxReplicas': (
        'maxReplicas is the upper limit for the number of replicas to which the'
        ' autoscaler can scale up. It cannot be less that minReplicas.'
    ),
    'HorizontalPodAutoscalerSpec.metrics': (
        'metrics contains the specifications for which to use to calculate the '
        'desired replica count (the maximum replica count across all metrics '
        'will be used).  The desired replica count is calculated multiplying '
        'the ratio between the target value and the current value by the '
        'current number of pods.  Ergo, metrics used must decrease as the pod '
        'count is increased, and vice-versa.  See the individual metric source '
        'types for more information about how each type of metric must respond.'
    ),
    'HorizontalPodAutoscalerSpec.minReplicas': (
        'minReplicas is the lower limit for the number of replicas to which the'
        ' autoscaler can scale down.  It defaults to 1 pod.  minReplicas is '
        'allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled '
        'and at least one Object or External metric is configured.  Scaling is '
        'active as long as at least one metric value is available.'
    ),
    'HorizontalPodAutoscalerSpec.scaleTargetRef': (
        'scaleTargetRef points to the target resource to scale, and is used to '
        'the pods for which metrics should be collected, as well as to actually'
        ' change the replica count.'
    ),
    'HorizontalPodAutoscalerStatus.currentReplicas': (
        'currentReplicas is current number of replicas of pods managed by this '
        'autoscaler, as last seen by the autoscaler.'
    ),
    'JobSpec.selector': (
        'A label query over pods that should match the pod count. Normally, the'
        ' system sets this field for you. More info: https://kubernetes.io/docs'
        '/concepts/overview/working-with-objects/labels/#label-selectors'
    ),
    'JobStatus.succeeded': (
        'The number of pods which reached phase Succeeded. The value increases '
        'monotonically for a given spec. However, it may decrease in reaction '
        'to scale down of elastic indexed jobs.'
    ),
    'LeaseSpec.holderIdentity': (
        'holderIdentity contains the identity of the holder of a current lease.'
        ' If Coordinated Leader Election is used, the holder identity must be '
        'equal to the elected LeaseCandidate.metadata.name field.'
    ),
    'LimitedPriorityLevelConfiguration.nominalConcurrencyShares': (
        '`nominalConcurrencyShares` (NCS) contributes to the computation of the'
        ' NominalConcurrencyLimit (NominalCL) of this level. This is the number'
        ' of execution seats available at this priority level. This is used '
        'both for requests dispatched from this priority level as well as '
        'requests dispatched from other priority levels borrowing seats from '
        "this level. The server's concurrency limit (ServerCL) is divided among"
        ' the Limited priority levels in proportion to their NCS values:\n\n'
        'NominalCL(i)  = ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = '
        'sum[priority level k] NCS(k)\n\nBigger numbers mean a larger nominal '
        'concurrency limit, at the expense of every other priority level. This '
        'field has a default value of 30.'
    ),
    'NetworkPolicySpec.podSelector': (
        'Selects the pods to which this NetworkPolicy object applies.  The '
        'array of ingress rules is applied to any pods selected by this field. '
        'Multiple network policies can select the same set of pods.  In this '
        'case, the ingress rules for each are combined additively. This field '
        'is NOT optional and follows standard label selector semantics. An '
        'empty podSelector matches all pods in this namespace.'
    ),
    'NodeStatus.addresses': (
        'List of addresses reachable to the node. Queried from cloud provider, '
        'if available. More info: '
        'https://kubernetes.io/docs/reference/node/node-status/#addresses Note:'
        ' This field is declared as mergeable, but the merge key is not '
        'sufficiently unique, which can cause data corruption when it is '
        'merged. Callers should instead use a full-replacement patch. See '
        'https://pr.k8s.io/79391 for an example. Consumers should assume that '
        'addresses can change during the lifetime of a Node. However, there are'
        ' some exceptions where this may not be possible, such as Pods that '
        "inherit a Node's address in its own status or consumers of the "
        'downward API (status.hostIP).'
    ),
    'NodeSystemInfo.containerRuntimeVersion': (
        'ContainerRuntime Version reported by the node through runtime remote '
        'API (e.g. containerd://1.4.2).'
    ),
    'NodeSystemInfo.kernelVersion': (
        "Kernel Version reported by the node from 'uname -r' (e.g. "
        '3.16.0-0.bpo.4-amd64).'
    ),
    'NodeSystemInfo.kubeletVersion': (
        'Kubelet Version reported by the node.'
    ),
    'NodeSystemInfo.osImage': (
        'OS Image reported by the node from /etc/os-release (e.g. Debian '
        'GNU/Linux 7 (wheezy)).'
    ),
    'ObjectMeta.creationTimestamp': (
        'CreationTimestamp is a timestamp representing the server time when '
        'this object was created. It is not guaranteed to be set in '
        'happens-before order across separate operations. Clients may not set '
        'this value. It is represented in RFC3339 form and is in UTC.\n\n'
        'Populated by the system. Read-only. Null for lists. More info: https:/'
        '/git.k8s.io/community/contributors/devel/sig-architecture/api-conventi'
        'ons.md#metadata'
    ),
    'ObjectMeta.name': (
        'Name must be unique within a namespace. Is required when creating '
        'resources, although some resources may allow a client to request the '
        'generation of an appropriate name automatically. Name is primarily '
        'intended for creation idempotence and configuration definition. Cannot'
        ' be updated. More info: https://kubernetes.io/docs/concepts/overview/w'
        'orking-with-objects/names#names'
    ),
    'ObjectReference.fieldPath': (
        'If referring to a piece of an object instead of an entire object, this'
        ' string should contain a valid JSON/Go field access statement, such as'
        ' desiredState.manifest.containers[2]. For example, if the object '
        'reference is to a container within a pod, this would take on a value '
        'like: "spec.containers{name}" (where "name" refers to the name of the '
        'container that triggered the event) or if no container name is '
        'specified "spec.containers[2]" (container with index 2 in this pod). '
        'This syntax is chosen only to have some well-defined way of '
        'referencing a part of an object.'
    ),
    'PersistentVolumeClaimSpec.volumeMode': (
        'volumeMode defines what type of volume is required by the claim. Value'
        ' of Filesystem is implied when not included in claim spec.'
    ),
    'PersistentVolumeClaimSpec.volumeName': (
        'volumeName is the binding reference to the PersistentVolume backing '
        'this claim.'
    ),
    'PersistentVolumeClaimStatus.accessModes': (
        'accessModes contains the actual access modes the volume backing the '
        'PVC has. More info: https://kubernetes.io/docs/concepts/storage/persis'
        'tent-volumes#access-modes-1'
    ),
    'PersistentVolumeClaimStatus.capacity': (
        'capacity represents the actual resources of the underlying volume.'
    ),
    'PersistentVolumeClaimStatus.phase': (
        'phase represents the current phase of PersistentVolumeClaim.'
    ),
    'PersistentVolumeSpec.accessModes': (
        'accessModes contains all ways the volume can be mounted. More info: ht'
        'tps://kubernetes.io/docs/concepts/storage/persistent-volumes#access-mo'
        'des'
    ),
    'PersistentVolumeSpec.capacity': (
        "capacity is the description of the persistent volume's resources and "
        'capacity. More info: https://kubernetes.io/docs/concepts/storage/persi'
        'stent-volumes#capacity'
    ),
    'PersistentVolumeSpec.claimRef': (
        'claimRef is part of a bi-directional binding between PersistentVolume '
        'and PersistentVolumeClaim. Expected to be non-nil when bound. '
        'claim.VolumeName is the authoritative bind between PV and PVC. More '
        'info: '
        'https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding'
    ),
    'PersistentVolumeSpec.persistentVolumeReclaimPolicy': (
        'persistentVolumeReclaimPolicy defines what happens to a persistent '
        'volume when released from its claim. Valid options are Retain (default'
        ' for manually created PersistentVolumes), Delete (default for '
        'dynamically provisioned PersistentVolumes), and Recycle (deprecated). '
        'Recycle must be supported by the volume plugin underlying this '
        'PersistentVolume. More info: https://kubernetes.io/docs/concepts/stora'
        'ge/persistent-volumes#reclaiming'
    ),
    'PersistentVolumeSpec.volumeMode': (
        'volumeMode defines if a volume is intended to be used with a formatted'
        ' filesystem or to remain in raw block state. Value of Filesystem is '
        'implied when not included in spec.'
    ),
    'PersistentVolumeStatus.phase': (
        'phase indicates if a volume is available, bound to a claim, or '
        'released by a claim. More info: '
        'https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase'
    ),
    'PersistentVolumeStatus.reason': (
        'reason is a brief CamelCase string that describes any failure and is '
        'meant for machine parsing and tidy display in the CLI.'
    ),
    'PodSpec.nodeName': (
        'NodeName indicates in which node this pod is scheduled. If empty, this'
        ' pod is a candidate for scheduling by the scheduler defined in '
        'schedulerName. Once this field is set, the kubelet for this node '
        'becomes responsible for the lifecycle of this pod. This field should '
        'not be used to express a desire for the pod to be scheduled on a '
        'specific node. https://kubernetes.io/docs/concepts/scheduling-eviction'
        '/assign-pod-node/#nodename'
    ),
    'PodSpec.nodeSelector': (
        'NodeSelector is a selector which must be true for the pod to fit on a '
        "node. Selector which must match a node's labels for the pod to be "
        'scheduled on that node. More info: '
        'https://kubernetes.io/docs/concepts/configuration/assign-pod-node/'
    ),
    'PodSpec.readinessGates': (
        'If specified, all readiness gates will be evaluated for pod readiness.'
        ' A pod is ready when all its containers are ready AND all conditions '
        'specified in the readiness gates have status equal to "True" More '
        'info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readine'
        'ss-gates'
    ),
    'PodStatus.nominatedNodeName': (
        'nominatedNodeName is set only when this pod preempts other pods on the'
        ' node, but it cannot be scheduled right away as preemption victims '
        'receive their graceful termination periods. This field does not '
        'guarantee that the pod will be scheduled on this node. Scheduler may '
        'decide to place the pod elsewhere if other nodes become available '
        'sooner. Scheduler may also decide to give the resources on this node '
        'to a higher priority pod that is created after preemption. As a '
        'result, this field may be different than PodSpec.nodeName when the pod'
        ' is scheduled.'
    ),
    'PodStatus.podIP': (
        'podIP address allocated to the pod. Routable at least within the '
        'cluster. Empty if not yet allocated.'
    ),
    'PriorityClass.globalDefault': (
        'globalDefault specifies whether this PriorityClass should be '
        'considered as the default priority for pods that do not have any '
        'priority class. Only one PriorityClass can be marked as '
        '`globalDefault`. However, if more than one PriorityClasses exists with'
        ' their `globalDefault` field set to true, the smallest value of such '
        'global default PriorityClasses will be used as the default priority.'
    ),
    'PriorityClass.value': (
        'value represents the integer value of this priority class. This is the'
        ' actual priority that pods receive when they have the name of this '
        'class in their pod spec.'
    ),
    'PriorityLevelConfigurationReference.name': (
        '`name` is the name of the priority level configuration being '
        'referenced Required.'
    ),
    'PriorityLevelConfigurationSpec.type': (
        '`type` indicates whether this priority level is subject to limitation '
        'on request execution.  A value of `"Exempt"` means that requests of '
        'this priority level are not subject to a limit (and thus are never '
        'queued) and do not detract from the capacity made available to other '
        'priority levels.  A value of `"Limited"` means that (a) requests of '
        'this priority level _are_ subject to limits and (b) some of the '
        "server's limited capacity is made available exclusively to this "
        'priority level. Required.'
    ),
    'QueuingConfiguration.handSize': (
        '`handSize` is a small positive number that configures the shuffle '
        'sharding of requests into queues.  When enqueuing a request at this '
        "priority level the request's flow identifier (a string pair) is hashed"
        ' and the hash value is used to shuffle the list of queues and deal a '
        'hand of the size specified here.  The request is put into one of the '
        'shortest queues in that hand. `handSize` must be no larger than '
        '`queues`, and should be significantly smaller (so that a few heavy '
        'flows do not saturate most of the queues).  See the user-facing '
        'documentation for more extensive guidance on setting this field.  This'
        ' field has a default value of 8.'
    ),
    'QueuingConfiguration.queueLengthLimit': (
        '`queueLengthLimit` is the maximum number of requests allowed to be '
        'waiting in a given queue of this priority level at a time; excess '
        'requests are rejected.  This value must be positive.  If not '
        'specified, it will be defaulted to 50.'
    ),
    'QueuingConfiguration.queues': (
        '`queues` is the number of queues for this priority level. The queues '
        'exist independently at each apiserver. The value must be positive.  '
        'Setting it to 1 effectively precludes shufflesharding and thus makes '
        'the distinguisher method of associated flow schemas irrelevant.  This '
        'field has a default value of 64.'
    ),
    'ReplicaSetSpec.replicas': (
        'Replicas is the number of desired pods. This is a pointer to '
        'distinguish between explicit zero and unspecified. Defaults to 1. More'
        ' info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/replicaset'
    ),
    'ReplicaSetSpec.selector': (
        'Selector is a label query over pods that should match the replica '
        'count. If the selector is empty, it is defaulted to the labels present'
        ' on the pod template. Label keys and values that must match in order '
        'to be controlled by this replica set. More info: https://kubernetes.io'
        '/docs/concepts/overview/working-with-objects/labels/#label-selectors'
    ),
    'ReplicaSetStatus.readyReplicas': (
        'The number of non-terminating pods targeted by this ReplicaSet with a '
        'Ready Condition.'
    ),
    'ReplicaSetStatus.replicas': (
        'Replicas is the most recently observed number of non-terminating pods.'
        ' More info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/replicaset'
    ),
    'ReplicationControllerSpec.replicas': (
        'Replicas is the number of desired replicas. This is a pointer to '
        'distinguish between explicit zero and unspecified. Defaults to 1. More'
        ' info: https://kubernetes.io/docs/concepts/workloads/controllers/repli'
        'cationcontroller#what-is-a-replicationcontroller'
    ),
    'ReplicationControllerSpec.selector': (
        'Selector is a label query over pods that should match the Replicas '
        'count. If Selector is empty, it is defaulted to the labels present on '
        'the Pod template. Label keys and values that must match in order to be'
        ' controlled by this replication controller, if empty defaulted to '
        'labels on Pod template. More info: https://kubernetes.io/docs/concepts'
        '/overview/working-with-objects/labels/#label-selectors'
    ),
    'ReplicationControllerStatus.readyReplicas': (
        'The number of ready replicas for this replication controller.'
    ),
    'ReplicationControllerStatus.replicas': (
        'Replicas is the most recently observed number of replicas. More info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/replicationc'
        'ontroller#what-is-a-replicationcontroller'
    ),
    'RoleBinding.roleRef': (
        'RoleRef can reference a Role in the current namespace or a ClusterRole'
        ' in the global namespace. If the RoleRef cannot be resolved, the '
        'Authorizer must return an error.'
    ),
    'Secret.data': (
        'Data contains the secret data. Each key must consist of alphanumeric '
        "characters, '-', '_' or '.'. The serialized form of the secret data is"
        ' a base64 encoded string, representing the arbitrary (possibly '
        'non-string) data value here. Described in '
        'https://tools.ietf.org/html/rfc4648#section-4'
    ),
    'Secret.type': (
        'Used to facilitate programmatic handling of secret data. More info: '
        'https://kubernetes.io/docs/concepts/configuration/secret/#secret-types'
    ),
    'ServiceAccount.secrets': (
        'Secrets is a list of the secrets in the same namespace that pods '
        'running using this ServiceAccount are allowed to use. Pods are only '
        'limited to this list if this service account has a '
        '"kubernetes.io/enforce-mountable-secrets" annotation set to "true". '
        'The "kubernetes.io/enforce-mountable-secrets" annotation is deprecated'
        ' since v1.32. Prefer separate namespaces to isolate access to mounted '
        'secrets. This field should not be used to find auto-generated service '
        'account token secrets for use outside of pods. Instead, tokens can be '
        'requested directly using the TokenRequest API, or service account '
        'token secrets can be manually created. More info: '
        'https://kubernetes.io/docs/concepts/configuration/secret'
    ),
    'ServiceSpec.clusterIP': (
        'clusterIP is the IP address of the service and is usually assigned '
        'randomly. If an address is specified manually, is in-range (as per '
        'system configuration), and is not in use, it will be allocated to the '
        'service; otherwise creation of the service will fail. This field may '
        'not be changed through updates unless the type field is also being '
        'changed to ExternalName (which requires this field to be blank) or the'
        ' type field is being changed from ExternalName (in which case this '
        'field may optionally be specified, as describe above).  Valid values '
        'are "None", empty string (""), or a valid IP address. Setting this to '
        '"None" makes a "headless service" (no virtual IP), which is useful '
        'when direct endpoint connections are preferred and proxying is not '
        'required.  Only applies to types ClusterIP, NodePort, and '
        'LoadBalancer. If this field is specified when creating a Service of '
        'type ExternalName, creation will fail. This field will be wiped when '
        'updating a Service to type ExternalName. More info: https://kubernetes'
        '.io/docs/concepts/services-networking/service/#virtual-ips-and-service'
        '-proxies'
    ),
    'ServiceSpec.externalIPs': (
        'externalIPs is a list of IP addresses for which nodes in the cluster '
        'will also accept traffic for this service.  These IPs are not managed '
        'by Kubernetes.  The user is responsible for ensuring that traffic '
        'arrives at a node with this IP.  A common example is external '
        'load-balancers that are not part of the Kubernetes system.'
    ),
    'ServiceSpec.ports': (
        'The list of ports that are exposed by this service. More info: https:/'
        '/kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-'
        'and-service-proxies'
    ),
    'ServiceSpec.selector': (
        'Route service traffic to pods with label keys and values matching this'
        ' selector. If empty or not present, the service is assumed to have an '
        'external process managing its endpoints, which Kubernetes will not '
        'modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. '
        'Ignored if type is ExternalName. More info: '
        'https://kubernetes.io/docs/concepts/services-networking/service/'
    ),
    'ServiceSpec.type': (
        'type determines how the Service is exposed. Defaults to ClusterIP. '
        'Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer.'
        ' "ClusterIP" allocates a cluster-internal IP address for '
        'load-balancing to endpoints. Endpoints are determined by the selector '
        'or if that is not specified, by manual construction of an Endpoints '
        'object or EndpointSlice objects. If clusterIP is "None", no virtual IP'
        ' is allocated and the endpoints are published as a set of endpoints '
        'rather than a virtual IP. "NodePort" builds on ClusterIP and allocates'
        ' a port on every node which routes to the same endpoints as the '
        'clusterIP. "LoadBalancer" builds on NodePort and creates an external '
        'load-balancer (if supported in the current cloud) which routes to the '
        'same endpoints as the clusterIP. "ExternalName" aliases this service '
        'to the specified externalName. Several other fields do not apply to '
        'ExternalName services. More info: https://kubernetes.io/docs/concepts/'
        'services-networking/service/#publishing-services-service-types'
    ),
    'StorageClass.allowVolumeExpansion': (
        'allowVolumeExpansion shows whether the storage class allow volume '
        'expand.'
    ),
    'StorageClass.provisioner': (
        'provisioner indicates the type of the provisioner.'
    ),
    'StorageClass.reclaimPolicy': (
        'reclaimPolicy controls the reclaimPolicy for dynamically provisioned '
        'PersistentVolumes of this storage class. Defaults to Delete.'
    ),
    'StorageClass.volumeBindingMode': (
        'volumeBindingMode indicates how PersistentVolumeClaims should be '
        'provisioned and bound.  When unset, VolumeBindingImmediate is used. '
        'This field is only honored by servers that enable the VolumeScheduling'
        ' feature.'
    ),
    'VolumeAttachmentSource.persistentVolumeName': (
        'persistentVolumeName represents the name of the persistent volume to '
        'attach.'
    ),
    'VolumeAttachmentSpec.attacher': (
        'attacher indicates the name of the volume driver that MUST handle this'
        ' request. This is the name returned by GetPluginName().'
    ),
    'VolumeAttachmentSpec.nodeName': (
        'nodeName represents the node that the volume should be attached to.'
    ),
    'VolumeAttachmentStatus.attached': (
        'attached indicates the volume is successfully attached. This field '
        'must only be set by the entity completing the attach operation, i.e. '
        'the external-attacher.'
    ),
}


class InvalidTableRequest(ValueError):
    """
    The request asked for something a Table cannot be (an unknown
    C{includeObject} or Table version); the API server answers 400/406.
    """


# Time


def _to_datetime(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(now, timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """
    Parse a Kubernetes timestamp (RFC 3339, optionally with fractional
    seconds as in MicroTime); C{None} for missing or malformed values.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def human_duration(elapsed: timedelta) -> str:
    """
    A duration the way kubectl prints ages: C{45s}, C{3m20s}, C{5h12m},
    C{2d3h}, C{400d}, C{3y20d}.
    """
    # Go truncates toward zero when converting durations to whole units.
    seconds = int(elapsed.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def _since(value: Any, now: datetime) -> str:
    timestamp = parse_time(value)
    if timestamp is None:
        return "<unknown>"
    return human_duration(now - timestamp)


# Field access and formatting helpers shared by the printers


def _get(obj: Any, *path: str | int, default: Any = None) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or len(obj) <= key:
                return default
        elif not isinstance(obj, Mapping) or key not in obj:
            return default
        obj = obj[key]
    return default if obj is None else obj


def _name(obj: Mapping[str, Any]) -> str:
    return _get(obj, "metadata", "name", default="")


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"), now)


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """C{a=b,c=d} sorted by key, or C{<none>}."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def label_selector_string(selector: Mapping[str, Any] | None) -> str:
    """
    A C{metav1.LabelSelector} in label-selector syntax (C{app=web,tier in
    (a,b)}), requirements sorted by key; C{""} when it selects everything or
    nothing.
    """
    if not selector:
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expression in selector.get("matchExpressions") or ():
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = ",".join(sorted(set(expression.get("values") or ())))
        if operator == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif operator == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """L{label_selector_string}, or C{<none>} when that is empty."""
    return label_selector_string(selector) or "<none>"


def _containers(containers: Sequence[Mapping[str, Any]] | None) -> tuple[str, str]:
    containers = containers or ()
    names = ",".join(container.get("name", "") for container in containers)
    images = ",".join(container.get("image", "") for container in containers)
    return names, images


def _bool_pointer(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _condition_status(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> bool:
    for condition in conditions or ():
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _join_list(items: list[str], more: bool, count: int, maximum: int, empty: str) -> str:
    text = ",".join(items)
    if more:
        return f"{text} + {count - maximum} more..."
    return text or empty


# Column definitions


@dataclass(frozen=True)
class Column:
    """One C{metav1.TableColumnDefinition}."""

    name: str
    type: str = "string"
    description: str = ""
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _doc(key: str) -> str:
    return _DESCRIPTIONS[key]


def _name_column() -> Column:
    return Column("Name", format="name", description=_doc("ObjectMeta.name"))


def _age_column() -> Column:
    return Column("Age", description=_doc("ObjectMeta.creationTimestamp"))


CONTAINERS_DESCRIPTION = "Names of each container in the template."
IMAGES_DESCRIPTION = "Images referenced by each container in the template."


def _wide_template_columns(selector_doc: str | None) -> tuple[Column, ...]:
    columns = [
        Column("Containers", priority=1, description=CONTAINERS_DESCRIPTION),
        Column("Images", priority=1, description=IMAGES_DESCRIPTION),
    ]
    if selector_doc:
        columns.append(Column("Selector", priority=1, description=_doc(selector_doc)))
    return tuple(columns)


@dataclass(frozen=True)
class Printer:
    """
    How one resource is tabulated.

    @ivar columns: the column definitions, wide ones included.
    @ivar cells: builds one row's cells from an object and the current time.
    @ivar conditions: optional; builds the row's C{conditions}.
    """

    columns: tuple[Column, ...]
    cells: RowFunction
    conditions: ConditionFunction | None = None

    def column_definitions(self) -> list[dict[str, Any]]:
        return [column.definition() for column in self.columns]


_PRINTERS: dict[tuple[str, str], Printer] = {}


def _printer(
    *group_resources: tuple[str, str],
    columns: Sequence[Column],
    conditions: ConditionFunction | None = None,
) -> Callable[[RowFunction], RowFunction]:
    def register(function: RowFunction) -> RowFunction:
        printer = Printer(tuple(columns), function, conditions)
        for group_resource in group_resources:
            _PRINTERS[group_resource] = printer
        return function

    return register


# Printers, in the order of Kubernetes' printers.go


_POD_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Failed",
        "message": "The pod failed.",
    }
]


def _pod_conditions(pod: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    timestamp = parse_time(candidate)
    if timestamp is None:
        return current
    if current is None or timestamp > current:
        return timestamp
    return current


def pod_status_cells(pod: Mapping[str, Any], now: datetime) -> tuple[str, str, str]:
    """
    The Ready (C{1/2}), Status (C{Running}, C{CrashLoopBackOff},
    C{Init:0/1}, C{Completed}, C{Terminating}, ...) and Restarts
    (C{3 (5m ago)}) cells kubectl shows for a pod.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    containers = spec.get("containers") or ()
    total = len(containers)
    ready = 0
    restarts = 0
    last_restart: datetime | None = None
    sidecar_restarts = 0
    last_sidecar_restart: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    # Init containers with restartPolicy Always are sidecars: they count as
    # containers of the pod.
    init_containers = {c.get("name"): c for c in spec.get("initContainers") or ()}
    sidecars = {name for name, c in init_containers.items() if c.get("restartPolicy") == "Always"}
    total += len(sidecars)

    initializing = False
    init_statuses = status.get("initContainerStatuses") or ()
    for index, container in enumerate(init_statuses):
        restarts += int(container.get("restartCount") or 0)
        finished = _get(container, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        is_sidecar = container.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += int(container.get("restartCount") or 0)
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_containers)}"
        initializing = True
        break

    if not initializing or _condition_status(status.get("conditions"), "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        error_reason = ""
        for container in reversed(status.get("containerStatuses") or ()):
            restarts += int(container.get("restartCount") or 0)
            last_restart = _later(
                last_restart, _get(container, "lastState", "terminated", "finishedAt")
            )
            state = container.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                if terminated.get("reason"):
                    reason = terminated["reason"]
                elif terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
                if int(terminated.get("exitCode") or 0) != 0:
                    error_reason = reason
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed":
            if has_running and _condition_status(status.get("conditions"), "Ready"):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return f"{ready}/{total}", reason, restarts_text


@_printer(
    ("", "pods"),
    columns=(
        _name_column(),
        Column(
            "Ready",
            description="The aggregate readiness state of this pod for accepting traffic.",
        ),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            description="The number of times the containers in this pod have been restarted "
            "and when the last container in this pod has restarted.",
        ),
        _age_column(),
        Column("IP", priority=1, description=_doc("PodStatus.podIP")),
        Column("Node", priority=1, description=_doc("PodSpec.nodeName")),
        Column("Nominated Node", priority=1, description=_doc("PodStatus.nominatedNodeName")),
        Column("Readiness Gates", priority=1, description=_doc("PodSpec.readinessGates")),
    ),
    conditions=_pod_conditions,
)
def _pod(pod: Mapping[str, Any], now: datetime) -> Cells:
    ready, reason, restarts = pod_status_cells(pod, now)
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    pod_ip = _get(status, "podIPs", 0, "ip") or "<none>"
    gates = "<none>"
    if spec.get("readinessGates"):
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
        satisfied = sum(
            1
            for gate in spec["readinessGates"]
            if conditions.get(gate.get("conditionType")) == "True"
        )
        gates = f"{satisfied}/{len(spec['readinessGates'])}"
    return [
        _name(pod),
        ready,
        reason,
        restarts,
        _age(pod, now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates,
    ]


@_printer(
    ("", "podtemplates"),
    columns=(
        _name_column(),
        Column("Containers", description=CONTAINERS_DESCRIPTION),
        Column("Images", description=IMAGES_DESCRIPTION),
        Column("Pod Labels", description="The labels for the pod template."),
    ),
)
def _pod_template(template: Mapping[str, Any], now: datetime) -> Cells:
    names, images = _containers(_get(template, "template", "spec", "containers"))
    return [
        _name(template),
        names,
        images,
        format_labels(_get(template, "template", "metadata", "labels")),
    ]


@_printer(
    ("policy", "poddisruptionbudgets"),
    columns=(
        _name_column(),
        Column("Min Available", description="The minimum number of pods that must be available."),
        Column(
            "Max Unavailable",
            description="The maximum number of pods that may be unavailable.",
        ),
        Column(
            "Allowed Disruptions",
            type="integer",
            description="Calculated number of pods that may be disrupted at this time.",
        ),
        _age_column(),
    ),
)
def _pod_disruption_budget(budget: Mapping[str, Any], now: datetime) -> Cells:
    spec = budget.get("spec") or {}
    minimum = spec.get("minAvailable")
    maximum = spec.get("maxUnavailable")
    return [
        _name(budget),
        "N/A" if minimum is None else str(minimum),
        "N/A" if maximum is None else str(maximum),
        int(_get(budget, "status", "disruptionsAllowed", default=0)),
        _age(budget, now),
    ]


@_printer(
    ("", "replicationcontrollers"),
    columns=(
        _name_column(),
        Column("Desired", type="integer", description=_doc("ReplicationControllerSpec.replicas")),
        Column("Current", type="integer", description=_doc("ReplicationControllerStatus.replicas")),
        Column(
            "Ready",
            type="integer",
            description=_doc("ReplicationControllerStatus.readyReplicas"),
        ),
        _age_column(),
        *_wide_template_columns("ReplicationControllerSpec.selector"),
    ),
)
def _replication_controller(controller: Mapping[str, Any], now: datetime) -> Cells:
    names, images = _containers(_get(controller, "spec", "template", "spec", "containers"))
    return [
        _name(controller),
        int(_get(controller, "spec", "replicas", default=1)),
        int(_get(controller, "status", "replicas", default=0)),
        int(_get(controller, "status", "readyReplicas", default=0)),
        _age(controller, now),
        names,
        images,
        format_labels(_get(controller, "spec", "selector")),
    ]


@_printer(
    ("apps", "replicasets"),
    columns=(
        _name_column(),
        Column("Desired", type="integer", description=_doc("ReplicaSetSpec.replicas")),
        Column("Current", type="integer", description=_doc("ReplicaSetStatus.replicas")),
        Column("Ready", type="integer", description=_doc("ReplicaSetStatus.readyReplicas")),
        _age_column(),
        *_wide_template_columns("ReplicaSetSpec.selector"),
    ),
)
def _replica_set(replica_set: Mapping[str, Any], now: datetime) -> Cells:
    names, images = _containers(_get(replica_set, "spec", "template", "spec", "containers"))
    return [
        _name(replica_set),
        int(_get(replica_set, "spec", "replicas", default=1)),
        int(_get(replica_set, "status", "replicas", default=0)),
        int(_get(replica_set, "status", "readyReplicas", default=0)),
        _age(replica_set, now),
        names,
        images,
        format_label_selector(_get(replica_set, "spec", "selector")),
    ]


@_printer(
    ("apps", "daemonsets"),
    columns=(
        _name_column(),
        Column(
            "Desired",
            type="integer",
            description=_doc("DaemonSetStatus.desiredNumberScheduled"),
        ),
        Column(
            "Current",
            type="integer",
            description=_doc("DaemonSetStatus.currentNumberScheduled"),
        ),
        Column("Ready", type="integer", description=_doc("DaemonSetStatus.numberReady")),
        Column(
            "Up-to-date",
            type="integer",
            description=_doc("DaemonSetStatus.updatedNumberScheduled"),
        ),
        Column("Available", type="integer", description=_doc("DaemonSetStatus.numberAvailable")),
        Column("Node Selector", description=_doc("PodSpec.nodeSelector")),
        _age_column(),
        *_wide_template_columns("DaemonSetSpec.selector"),
    ),
)
def _daemon_set(daemon_set: Mapping[str, Any], now: datetime) -> Cells:
    status = daemon_set.get("status") or {}
    names, images = _containers(_get(daemon_set, "spec", "template", "spec", "containers"))
    return [
        _name(daemon_set),
        int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0),
        int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0),
        int(status.get("numberAvailable") or 0),
        format_labels(_get(daemon_set, "spec", "template", "spec", "nodeSelector")),
        _age(daemon_set, now),
        names,
        images,
        format_label_selector(_get(daemon_set, "spec", "selector")),
    ]


@_printer(
    ("batch", "jobs"),
    columns=(
        _name_column(),
        Column("Completions", description=_doc("JobStatus.succeeded")),
        Column("Duration", description="Time required to complete the job."),
        _age_column(),
        *_wide_template_columns("JobSpec.selector"),
    ),
)
def _job(job: Mapping[str, Any], now: datetime) -> Cells:
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started = parse_time(status.get("startTime"))
    completed = parse_time(status.get("completionTime"))
    if started is None:
        duration = ""
    elif completed is None:
        duration = human_duration(now - started)
    else:
        duration = human_duration(completed - started)
    names, images = _containers(_get(spec, "template", "spec", "containers"))
    return [
        _name(job),
        completions,
        duration,
        _age(job, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


@_printer(
    ("batch", "cronjobs"),
    columns=(
        _name_column(),
        Column("Schedule", description=_doc("CronJobSpec.schedule")),
        Column("Suspend", type="boolean", description=_doc("CronJobSpec.suspend")),
        Column("Active", type="integer", description=_doc("CronJobStatus.active")),
        Column("Last Schedule", description=_doc("CronJobStatus.lastScheduleTime")),
        _age_column(),
        *_wide_template_columns("JobSpec.selector"),
    ),
)
def _cron_job(cron_job: Mapping[str, Any], now: datetime) -> Cells:
    spec = cron_job.get("spec") or {}
    last = _get(cron_job, "status", "lastScheduleTime")
    job_spec = _get(spec, "jobTemplate", "spec", default={})
    names, images = _containers(_get(job_spec, "template", "spec", "containers"))
    return [
        _name(cron_job),
        spec.get("schedule", ""),
        _bool_pointer(spec.get("suspend")),
        len(_get(cron_job, "status", "active", default=())),
        "<none>" if last is None else _since(last, now),
        _age(cron_job, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


def _load_balancer_addresses(ingress: Iterable[Mapping[str, Any]] | None) -> str:
    addresses = set()
    for entry in ingress or ():
        if entry.get("ip"):
            addresses.add(entry["ip"])
        elif entry.get("hostname"):
            addresses.add(entry["hostname"])
    # The server renders the wide form, which is never truncated.
    return ",".join(sorted(addresses))


def _service_external_ip(service: Mapping[str, Any]) -> str:
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    external_ips = spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if kind == "LoadBalancer":
        balancer = _load_balancer_addresses(_get(service, "status", "loadBalancer", "ingress"))
        if external_ips:
            results = balancer.split(",") if balancer else []
            return ",".join(results + list(external_ips))
        return balancer or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_ports(ports: Iterable[Mapping[str, Any]] | None) -> str:
    pieces = []
    for port in ports or ():
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


@_printer(
    ("", "services"),
    columns=(
        _name_column(),
        Column("Type", description=_doc("ServiceSpec.type")),
        Column("Cluster-IP", description=_doc("ServiceSpec.clusterIP")),
        Column("External-IP", description=_doc("ServiceSpec.externalIPs")),
        Column("Port(s)", description=_doc("ServiceSpec.ports")),
        _age_column(),
        Column("Selector", priority=1, description=_doc("ServiceSpec.selector")),
    ),
)
def _service(service: Mapping[str, Any], now: datetime) -> Cells:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        _name(service),
        spec.get("type", "ClusterIP"),
        cluster_ips[0] if cluster_ips else "<none>",
        _service_external_ip(service),
        _service_ports(spec.get("ports")),
        _age(service, now),
        format_labels(spec.get("selector")),
    ]


@_printer(
    ("networking.k8s.io", "ingresses"),
    columns=(
        _name_column(),
        Column(
            "Class",
            description="The name of the IngressClass resource that should be used for "
            "additional configuration",
        ),
        Column(
            "Hosts",
            description="Hosts that incoming requests are matched against before the ingress rule",
        ),
        Column(
            "Address",
            description="Address is a list containing ingress points for the load-balancer",
        ),
        Column("Ports", description="Ports of TLS configurations that open"),
        _age_column(),
    ),
)
def _ingress(ingress: Mapping[str, Any], now: datetime) -> Cells:
    spec = ingress.get("spec") or {}
    rules = spec.get("rules") or []
    hosts = [rule["host"] for rule in rules[:3] if rule.get("host")]
    hosts_text = ",".join(hosts) or "*"
    if len(rules) > 3 and hosts:
        hosts_text = f"{hosts_text} + {len(rules) - 3} more..."
    return [
        _name(ingress),
        spec.get("ingressClassName") or "<none>",
        hosts_text,
        _load_balancer_addresses(_get(ingress, "status", "loadBalancer", "ingress")),
        "80, 443" if spec.get("tls") else "80",
        _age(ingress, now),
    ]


@_printer(
    ("networking.k8s.io", "ingressclasses"),
    columns=(
        _name_column(),
        Column("Controller", description="Controller that is responsible for handling this class"),
        Column("Parameters", description="A reference to a resource with additional parameters"),
        _age_column(),
    ),
)
def _ingress_class(ingress_class: Mapping[str, Any], now: datetime) -> Cells:
    parameters = _get(ingress_class, "spec", "parameters")
    text = "<none>"
    if parameters:
        text = parameters.get("kind", "")
        if parameters.get("apiGroup") is not None:
            text += "." + parameters["apiGroup"]
        text += "/" + parameters.get("name", "")
    return [
        _name(ingress_class),
        _get(ingress_class, "spec", "controller", default=""),
        text,
        _age(ingress_class, now),
    ]


@_printer(
    ("apps", "statefulsets"),
    columns=(
        _name_column(),
        Column("Ready", description="Number of the pod with ready state"),
        _age_column(),
        *_wide_template_columns(None),
    ),
)
def _stateful_set(stateful_set: Mapping[str, Any], now: datetime) -> Cells:
    names, images = _containers(_get(stateful_set, "spec", "template", "spec", "containers"))
    ready = int(_get(stateful_set, "status", "readyReplicas", default=0))
    desired = int(_get(stateful_set, "spec", "replicas", default=1))
    return [_name(stateful_set), f"{ready}/{desired}", _age(stateful_set, now), names, images]


def _endpoints_text(endpoints: Mapping[str, Any]) -> str:
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    listed: list[str] = []
    maximum = 3
    more = False
    count = 0
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:
            count += len(addresses)
            for address in addresses:
                if len(listed) == maximum:
                    more = True
                    break
                listed.append(address.get("ip", ""))
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(listed) == maximum:
                    more = True
                    break
                ip = address.get("ip", "")
                host = f"[{ip}]" if ":" in ip else ip
                listed.append(f"{host}:{port.get('port')}")
    return _join_list(listed, more, count, maximum, "")


@_printer(
    ("", "endpoints"),
    columns=(
        _name_column(),
        Column("Endpoints", description=_doc("Endpoints.subsets")),
        _age_column(),
    ),
)
def _endpoints(endpoints: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(endpoints), _endpoints_text(endpoints), _age(endpoints, now)]


@_printer(
    ("discovery.k8s.io", "endpointslices"),
    columns=(
        _name_column(),
        Column("AddressType", description=_doc("EndpointSlice.addressType")),
        Column("Ports", description=_doc("EndpointSlice.ports")),
        Column("Endpoints", description=_doc("EndpointSlice.endpoints")),
        _age_column(),
    ),
)
def _endpoint_slice(endpoint_slice: Mapping[str, Any], now: datetime) -> Cells:
    maximum = 3
    ports: list[str] = []
    port_count = 0
    for port in endpoint_slice.get("ports") or ():
        if len(ports) < maximum:
            if port.get("port") is not None:
                ports.append(str(port["port"]))
            elif port.get("name") is not None:
                ports.append(port["name"])
            else:
                ports.append("*")
        port_count += 1
    addresses: list[str] = []
    address_count = 0
    for endpoint in endpoint_slice.get("endpoints") or ():
        for address in endpoint.get("addresses") or ():
            if len(addresses) < maximum:
                addresses.append(address)
            address_count += 1
    return [
        _name(endpoint_slice),
        endpoint_slice.get("addressType", ""),
        _join_list(ports, port_count > maximum, port_count, maximum, "<unset>"),
        _join_list(addresses, address_count > maximum, address_count, maximum, "<unset>"),
        _age(endpoint_slice, now),
    ]


def node_roles(node: Mapping[str, Any]) -> list[str]:
    """
    A node's roles, from C{node-role.kubernetes.io/<role>} and
    C{kubernetes.io/role} labels, sorted.
    """
    roles = set()
    for key, value in (_get(node, "metadata", "labels", default={})).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def _node_address(node: Mapping[str, Any], kind: str) -> str:
    for address in _get(node, "status", "addresses", default=()):
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


@_printer(
    ("", "nodes"),
    columns=(
        _name_column(),
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        _age_column(),
        Column("Version", description=_doc("NodeSystemInfo.kubeletVersion")),
        Column("Internal-IP", priority=1, description=_doc("NodeStatus.addresses")),
        Column("External-IP", priority=1, description=_doc("NodeStatus.addresses")),
        Column("OS-Image", priority=1, description=_doc("NodeSystemInfo.osImage")),
        Column("Kernel-Version", priority=1, description=_doc("NodeSystemInfo.kernelVersion")),
        Column(
            "Container-Runtime",
            priority=1,
            description=_doc("NodeSystemInfo.containerRuntimeVersion"),
        ),
    ),
)
def _node(node: Mapping[str, Any], now: datetime) -> Cells:
    statuses = []
    for condition in _get(node, "status", "conditions", default=()):
        if condition.get("type") == "Ready":
            statuses = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not statuses:
        statuses = ["Unknown"]
    if _get(node, "spec", "unschedulable"):
        statuses.append("SchedulingDisabled")
    info = _get(node, "status", "nodeInfo", default={})
    return [
        _name(node),
        ",".join(statuses),
        ",".join(node_roles(node)) or "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _event_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    # events.k8s.io/v1 renames the core fields; the server prints both
    # versions from one internal type.
    if not str(event.get("apiVersion", "")).startswith("events.k8s.io/"):
        return dict(event)
    return {
        "metadata": event.get("metadata") or {},
        "involvedObject": event.get("regarding") or {},
        "message": event.get("note", ""),
        "reason": event.get("reason", ""),
        "type": event.get("type", ""),
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount"),
        "source": event.get("deprecatedSource") or {},
        "eventTime": event.get("eventTime"),
        "series": event.get("series"),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
    }


@_printer(
    ("", "events"),
    ("events.k8s.io", "events"),
    columns=(
        Column("Last Seen", description=_doc("Event.lastTimestamp")),
        Column("Type", description=_doc("Event.type")),
        Column("Reason", description=_doc("Event.reason")),
        Column("Object", description=_doc("Event.involvedObject")),
        Column("Subobject", priority=1, description=_doc("ObjectReference.fieldPath")),
        Column("Source", priority=1, description=_doc("Event.source")),
        Column("Message", description=_doc("Event.message")),
        Column("First Seen", priority=1, description=_doc("Event.firstTimestamp")),
        Column("Count", priority=1, description=_doc("Event.count")),
        Column("Name", priority=1, format="name", description=_doc("ObjectMeta.name")),
    ),
)
def _event(raw: Mapping[str, Any], now: datetime) -> Cells:
    event = _event_fields(raw)
    if parse_time(event.get("firstTimestamp")) is not None:
        first = _since(event["firstTimestamp"], now)
    else:
        first = _since(event.get("eventTime"), now)
    last = _since(event["lastTimestamp"], now) if parse_time(event.get("lastTimestamp")) else first
    count = event.get("count") or 0
    series = event.get("series")
    if series:
        last = _since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif count == 0:
        # Singleton events of the new API carry no count.
        count = 1
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return [
        last,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(event.get("message", "")).strip(),
        first,
        int(count),
        _name(raw),
    ]


@_printer(
    ("", "namespaces"),
    columns=(
        _name_column(),
        Column("Status", description="The status of the namespace"),
        _age_column(),
    ),
)
def _namespace(namespace: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(namespace), _get(namespace, "status", "phase", default=""), _age(namespace, now)]


@_printer(
    ("", "secrets"),
    columns=(
        _name_column(),
        Column("Type", description=_doc("Secret.type")),
        Column("Data", description=_doc("Secret.data")),
        _age_column(),
    ),
)
def _secret(secret: Mapping[str, Any], now: datetime) -> Cells:
    return [
        _name(secret),
        secret.get("type", "Opaque"),
        len(secret.get("data") or {}),
        _age(secret, now),
    ]


@_printer(
    ("", "serviceaccounts"),
    columns=(
        _name_column(),
        Column("Secrets", description=_doc("ServiceAccount.secrets")),
        _age_column(),
    ),
)
def _service_account(account: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(account), len(account.get("secrets") or ()), _age(account, now)]


_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: Iterable[str] | None) -> str:
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


@_printer(
    ("", "persistentvolumes"),
    columns=(
        _name_column(),
        Column("Capacity", description=_doc("PersistentVolumeSpec.capacity")),
        Column("Access Modes", description=_doc("PersistentVolumeSpec.accessModes")),
        Column(
            "Reclaim Policy",
            description=_doc("PersistentVolumeSpec.persistentVolumeReclaimPolicy"),
        ),
        Column("Status", description=_doc("PersistentVolumeStatus.phase")),
        Column("Claim", description=_doc("PersistentVolumeSpec.claimRef")),
        Column("StorageClass", description="StorageClass of the pv"),
        Column("Reason", description=_doc("PersistentVolumeStatus.reason")),
        _age_column(),
        Column("VolumeMode", priority=1, description=_doc("PersistentVolumeSpec.volumeMode")),
    ),
)
def _persistent_volume(volume: Mapping[str, Any], now: datetime) -> Cells:
    spec = volume.get("spec") or {}
    claim = spec.get("claimRef")
    phase = _get(volume, "status", "phase", default="")
    if _get(volume, "metadata", "deletionTimestamp") is not None:
        phase = "Terminating"
    annotations = _get(volume, "metadata", "annotations", default={})
    storage_class = annotations.get(_BETA_STORAGE_CLASS, spec.get("storageClassName", ""))
    return [
        _name(volume),
        # Approximation: the quantity as written, not re-canonicalised.
        str(_get(spec, "capacity", "storage", default="0")),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else "",
        storage_class,
        _get(volume, "status", "reason", default=""),
        _age(volume, now),
        spec.get("volumeMode") or "<unset>",
    ]


@_printer(
    ("", "persistentvolumeclaims"),
    columns=(
        _name_column(),
        Column("Status", description=_doc("PersistentVolumeClaimStatus.phase")),
        Column("Volume", description=_doc("PersistentVolumeClaimSpec.volumeName")),
        Column("Capacity", description=_doc("PersistentVolumeClaimStatus.capacity")),
        Column("Access Modes", description=_doc("PersistentVolumeClaimStatus.accessModes")),
        Column("StorageClass", description="StorageClass of the pvc"),
        _age_column(),
        Column("VolumeMode", priority=1, description=_doc("PersistentVolumeClaimSpec.volumeMode")),
    ),
)
def _persistent_volume_claim(claim: Mapping[str, Any], now: datetime) -> Cells:
    spec = claim.get("spec") or {}
    status = claim.get("status") or {}
    phase = status.get("phase", "")
    if _get(claim, "metadata", "deletionTimestamp") is not None:
        phase = "Terminating"
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        capacity = str(_get(status, "capacity", "storage", default="0"))
    annotations = _get(claim, "metadata", "annotations", default={})
    storage_class = annotations.get(_BETA_STORAGE_CLASS, spec.get("storageClassName") or "")
    return [
        _name(claim),
        phase,
        spec.get("volumeName", ""),
        capacity,
        modes,
        storage_class,
        _age(claim, now),
        spec.get("volumeMode") or "<unset>",
    ]


@_printer(
    ("", "componentstatuses"),
    columns=(
        _name_column(),
        Column("Status", description="Status of the component conditions"),
        Column("Message", description="Message of the component conditions"),
        Column("Error", description="Error of the component conditions"),
    ),
)
def _component_status(component: Mapping[str, Any], now: datetime) -> Cells:
    for condition in component.get("conditions") or ():
        if condition.get("type") == "Healthy":
            healthy = "Healthy" if condition.get("status") == "True" else "Unhealthy"
            return [
                _name(component),
                healthy,
                condition.get("message", ""),
                condition.get("error", ""),
            ]
    return [_name(component), "Unknown", "", ""]


@_printer(
    ("apps", "deployments"),
    columns=(
        _name_column(),
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description=_doc("DeploymentStatus.updatedReplicas")),
        Column("Available", description=_doc("DeploymentStatus.availableReplicas")),
        _age_column(),
        *_wide_template_columns("DeploymentSpec.selector"),
    ),
)
def _deployment(deployment: Mapping[str, Any], now: datetime) -> Cells:
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    names, images = _containers(_get(spec, "template", "spec", "containers"))
    return [
        _name(deployment),
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1))}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _age(deployment, now),
        names,
        images,
        label_selector_string(spec.get("selector")),
    ]


def _hpa_metrics(hpa: Mapping[str, Any]) -> str:
    spec = hpa.get("spec") or {}
    status = hpa.get("status") or {}
    if str(hpa.get("apiVersion", "")) == "autoscaling/v1":
        # v1 only knows a CPU utilisation target; without one the server
        # defaults to 80%.
        target = spec.get("targetCPUUtilizationPercentage", 80)
        current = status.get("currentCPUUtilizationPercentage")
        current_text = "<unknown>" if current is None else f"{current}%"
        return f"cpu: {current_text}/{target}%"
    metrics = spec.get("metrics") or []
    if not metrics:
        return "<none>"
    statuses = status.get("currentMetrics") or []
    texts = []
    for index, metric in enumerate(metrics):
        kind = metric.get("type")
        current_status = statuses[index] if index < len(statuses) else {}
        if kind in ("Resource", "ContainerResource"):
            field = "resource" if kind == "Resource" else "containerResource"
            source = metric.get(field) or {}
            target = source.get("target") or {}
            current = _get(current_status, field, "current", default={})
            if target.get("averageValue") is not None:
                current_text = current.get("averageValue", "<unknown>")
                texts.append(f"{source.get('name')}: {current_text}/{target['averageValue']}")
            else:
                utilisation = current.get("averageUtilization")
                current_text = "<unknown>" if utilisation is None else f"{utilisation}%"
                wanted = target.get("averageUtilization")
                target_text = "<auto>" if wanted is None else f"{wanted}%"
                texts.append(f"{source.get('name')}: {current_text}/{target_text}")
        elif kind == "Pods":
            target = _get(metric, "pods", "target", default={})
            current = _get(current_status, "pods", "current", default={})
            texts.append(f"{current.get('averageValue', '<unknown>')}/{target.get('averageValue')}")
        elif kind in ("Object", "External"):
            field = kind.lower()
            target = _get(metric, field, "target", default={})
            current = _get(current_status, field, "current", default={})
            if target.get("averageValue") is not None:
                texts.append(
                    f"{current.get('averageValue', '<unknown>')}/{target['averageValue']} (avg)",
                )
            else:
                texts.append(f"{current.get('value', '<unknown>')}/{target.get('value')}")
        else:
            texts.append("<unknown type>")
    if len(texts) > 2:
        return f"{', '.join(texts[:2])} + {len(texts) - 2} more..."
    return ", ".join(texts)


@_printer(
    ("autoscaling", "horizontalpodautoscalers"),
    columns=(
        _name_column(),
        Column("Reference", description=_doc("HorizontalPodAutoscalerSpec.scaleTargetRef")),
        Column("Targets", description=_doc("HorizontalPodAutoscalerSpec.metrics")),
        Column("MinPods", description=_doc("HorizontalPodAutoscalerSpec.minReplicas")),
        Column("MaxPods", description=_doc("HorizontalPodAutoscalerSpec.maxReplicas")),
        Column("Replicas", description=_doc("HorizontalPodAutoscalerStatus.currentReplicas")),
        _age_column(),
    ),
)
def _horizontal_pod_autoscaler(hpa: Mapping[str, Any], now: datetime) -> Cells:
    spec = hpa.get("spec") or {}
    reference = spec.get("scaleTargetRef") or {}
    minimum = spec.get("minReplicas")
    return [
        _name(hpa),
        f"{reference.get('kind', '')}/{reference.get('name', '')}",
        _hpa_metrics(hpa),
        "<unset>" if minimum is None else str(minimum),
        int(spec.get("maxReplicas") or 0),
        int(_get(hpa, "status", "currentReplicas", default=0)),
        _age(hpa, now),
    ]


@_printer(
    ("", "configmaps"),
    columns=(_name_column(), Column("Data", description=_doc("ConfigMap.data")), _age_column()),
)
def _config_map(config_map: Mapping[str, Any], now: datetime) -> Cells:
    count = len(config_map.get("data") or {}) + len(config_map.get("binaryData") or {})
    return [_name(config_map), count, _age(config_map, now)]


@_printer(
    ("networking.k8s.io", "networkpolicies"),
    columns=(
        _name_column(),
        Column("Pod-Selector", description=_doc("NetworkPolicySpec.podSelector")),
        _age_column(),
    ),
)
def _network_policy(policy: Mapping[str, Any], now: datetime) -> Cells:
    return [
        _name(policy),
        format_label_selector(_get(policy, "spec", "podSelector", default={})),
        _age(policy, now),
    ]


def _subjects(subjects: Iterable[Mapping[str, Any]] | None) -> tuple[str, str, str]:
    users, groups, service_accounts = [], [], []
    for subject in subjects or ():
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            service_accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
        elif kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
    return ", ".join(users), ", ".join(groups), ", ".join(service_accounts)


def _binding_columns(noun: str, role_doc: str) -> tuple[Column, ...]:
    return (
        _name_column(),
        Column("Role", description=_doc(role_doc)),
        _age_column(),
        Column("Users", priority=1, description=f"Users in the {noun}"),
        Column("Groups", priority=1, description=f"Groups in the {noun}"),
        Column("ServiceAccounts", priority=1, description=f"ServiceAccounts in the {noun}"),
    )


def _binding(binding: Mapping[str, Any], now: datetime) -> Cells:
    role = binding.get("roleRef") or {}
    users, groups, service_accounts = _subjects(binding.get("subjects"))
    return [
        _name(binding),
        f"{role.get('kind', '')}/{role.get('name', '')}",
        _age(binding, now),
        users,
        groups,
        service_accounts,
    ]


_PRINTERS[("rbac.authorization.k8s.io", "rolebindings")] = Printer(
    _binding_columns("roleBinding", "RoleBinding.roleRef"), _binding
)
_PRINTERS[("rbac.authorization.k8s.io", "clusterrolebindings")] = Printer(
    _binding_columns("clusterRoleBinding", "ClusterRoleBinding.roleRef"), _binding
)


def _csr_condition(csr: Mapping[str, Any]) -> str:
    kinds = {condition.get("type") for condition in _get(csr, "status", "conditions", default=())}
    if "Denied" in kinds:
        text = "Denied"
    elif "Approved" in kinds:
        text = "Approved"
    else:
        text = "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if _get(csr, "status", "certificate"):
        text += ",Issued"
    return text


@_printer(
    ("certificates.k8s.io", "certificatesigningrequests"),
    columns=(
        _name_column(),
        _age_column(),
        Column("SignerName", description=_doc("CertificateSigningRequestSpec.signerName")),
        Column("Requestor", description=_doc("CertificateSigningRequestSpec.request")),
        Column(
            "RequestedDuration",
            description=_doc("CertificateSigningRequestSpec.expirationSeconds"),
        ),
        Column("Condition", description=_doc("CertificateSigningRequestStatus.conditions")),
    ),
)
def _certificate_signing_request(csr: Mapping[str, Any], now: datetime) -> Cells:
    spec = csr.get("spec") or {}
    seconds = spec.get("expirationSeconds")
    return [
        _name(csr),
        _age(csr, now),
        spec.get("signerName") or "<none>",
        spec.get("username", ""),
        "<none>" if seconds is None else human_duration(timedelta(seconds=int(seconds))),
        _csr_condition(csr),
    ]


@_printer(
    ("coordination.k8s.io", "leases"),
    columns=(
        _name_column(),
        Column("Holder", description=_doc("LeaseSpec.holderIdentity")),
        _age_column(),
    ),
)
def _lease(lease: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(lease), _get(lease, "spec", "holderIdentity", default=""), _age(lease, now)]


@_printer(
    ("storage.k8s.io", "storageclasses"),
    columns=(
        _name_column(),
        Column("Provisioner", description=_doc("StorageClass.provisioner")),
        Column("ReclaimPolicy", description=_doc("StorageClass.reclaimPolicy")),
        Column("VolumeBindingMode", description=_doc("StorageClass.volumeBindingMode")),
        Column("AllowVolumeExpansion", description=_doc("StorageClass.allowVolumeExpansion")),
        _age_column(),
    ),
)
def _storage_class(storage_class: Mapping[str, Any], now: datetime) -> Cells:
    annotations = _get(storage_class, "metadata", "annotations", default={})
    name = _name(storage_class)
    if "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    ):
        name += " (default)"
    return [
        name,
        storage_class.get("provisioner", ""),
        storage_class.get("reclaimPolicy") or "Delete",
        storage_class.get("volumeBindingMode") or "Immediate",
        bool(storage_class.get("allowVolumeExpansion") or False),
        _age(storage_class, now),
    ]


@_printer(
    ("apps", "controllerrevisions"),
    columns=(
        _name_column(),
        Column("Controller", description="Controller of the object"),
        Column("Revision", description=_doc("ControllerRevision.revision")),
        _age_column(),
    ),
)
def _controller_revision(revision: Mapping[str, Any], now: datetime) -> Cells:
    controller = "<none>"
    for owner in _get(revision, "metadata", "ownerReferences", default=()):
        if owner.get("controller"):
            group = owner.get("apiVersion", "").rpartition("/")[0]
            kind = owner.get("kind", "")
            qualified = f"{kind}.{group}" if group else kind
            controller = f"{qualified.lower()}/{owner.get('name', '')}"
            break
    return [_name(revision), controller, int(revision.get("revision") or 0), _age(revision, now)]


def _quota_usage(quota: Mapping[str, Any]) -> tuple[str, str]:
    hard = _get(quota, "status", "hard", default={})
    used = _get(quota, "status", "used", default={})
    requests, limits = [], []
    for resource in sorted(hard):
        text = f"{resource}: {used.get(resource, '0')}/{hard[resource]}"
        pieces = resource.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(text)
    return ", ".join(requests), ", ".join(limits)


@_printer(
    ("", "resourcequotas"),
    columns=(
        _name_column(),
        _age_column(),
        Column(
            "Request",
            description="Request represents a minimum amount of cpu/memory that a container "
            "may consume.",
        ),
        Column(
            "Limit",
            description="Limits control the maximum amount of cpu/memory that a container may use "
            "independent of contention on the node.",
        ),
    ),
)
def _resource_quota(quota: Mapping[str, Any], now: datetime) -> Cells:
    requests, limits = _quota_usage(quota)
    return [_name(quota), _age(quota, now), requests, limits]


@_printer(
    ("scheduling.k8s.io", "priorityclasses"),
    columns=(
        _name_column(),
        Column("Value", type="integer", description=_doc("PriorityClass.value")),
        Column("Global-Default", type="boolean", description=_doc("PriorityClass.globalDefault")),
        _age_column(),
    ),
)
def _priority_class(priority_class: Mapping[str, Any], now: datetime) -> Cells:
    return [
        _name(priority_class),
        int(priority_class.get("value") or 0),
        bool(priority_class.get("globalDefault") or False),
        _age(priority_class, now),
    ]


@_printer(
    ("node.k8s.io", "runtimeclasses"),
    # The real column's description is empty: it is looked up in
    # ObjectMeta's documentation, which has no "handler" field.
    columns=(_name_column(), Column("Handler"), _age_column()),
)
def _runtime_class(runtime_class: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(runtime_class), runtime_class.get("handler", ""), _age(runtime_class, now)]


@_printer(
    ("storage.k8s.io", "volumeattachments"),
    columns=(
        _name_column(),
        Column("Attacher", format="name", description=_doc("VolumeAttachmentSpec.attacher")),
        Column("PV", description=_doc("VolumeAttachmentSource.persistentVolumeName")),
        Column("Node", description=_doc("VolumeAttachmentSpec.nodeName")),
        Column("Attached", type="boolean", description=_doc("VolumeAttachmentStatus.attached")),
        _age_column(),
    ),
)
def _volume_attachment(attachment: Mapping[str, Any], now: datetime) -> Cells:
    spec = attachment.get("spec") or {}
    return [
        _name(attachment),
        spec.get("attacher", ""),
        _get(spec, "source", "persistentVolumeName", default=""),
        spec.get("nodeName", ""),
        bool(_get(attachment, "status", "attached", default=False)),
        _age(attachment, now),
    ]


@_printer(
    ("storage.k8s.io", "csinodes"),
    columns=(
        _name_column(),
        Column(
            "Drivers",
            type="integer",
            description="Drivers indicates the number of CSI drivers registered on the node",
        ),
        _age_column(),
    ),
)
def _csi_node(csi_node: Mapping[str, Any], now: datetime) -> Cells:
    return [
        _name(csi_node),
        len(_get(csi_node, "spec", "drivers", default=())),
        _age(csi_node, now),
    ]


@_printer(
    ("storage.k8s.io", "csidrivers"),
    columns=(
        _name_column(),
        Column("AttachRequired", type="boolean", description=_doc("CSIDriverSpec.attachRequired")),
        Column("PodInfoOnMount", type="boolean", description=_doc("CSIDriverSpec.podInfoOnMount")),
        Column(
            "StorageCapacity",
            type="boolean",
            description=_doc("CSIDriverSpec.storageCapacity"),
        ),
        Column("TokenRequests", description=_doc("CSIDriverSpec.tokenRequests")),
        Column(
            "RequiresRepublish",
            type="boolean",
            description=_doc("CSIDriverSpec.requiresRepublish"),
        ),
        Column("Modes", description=_doc("CSIDriverSpec.volumeLifecycleModes")),
        _age_column(),
    ),
)
def _csi_driver(driver: Mapping[str, Any], now: datetime) -> Cells:
    spec = driver.get("spec") or {}
    tokens = spec.get("tokenRequests")
    return [
        _name(driver),
        bool(spec.get("attachRequired", True)),
        bool(spec.get("podInfoOnMount", False)),
        bool(spec.get("storageCapacity", False)),
        "<unset>" if tokens is None else ",".join(t.get("audience", "") for t in tokens),
        bool(spec.get("requiresRepublish", False)),
        ",".join(spec.get("volumeLifecycleModes") or ()) or "<none>",
        _age(driver, now),
    ]


@_printer(
    ("storage.k8s.io", "csistoragecapacities"),
    columns=(
        _name_column(),
        Column("StorageClassName", description=_doc("CSIStorageCapacity.storageClassName")),
        Column("Capacity", description=_doc("CSIStorageCapacity.capacity")),
    ),
)
def _csi_storage_capacity(capacity: Mapping[str, Any], now: datetime) -> Cells:
    value = capacity.get("capacity")
    return [
        _name(capacity),
        capacity.get("storageClassName", ""),
        "<unset>" if value is None else str(value),
    ]


def _webhook_columns() -> tuple[Column, ...]:
    return (
        _name_column(),
        Column(
            "Webhooks",
            type="integer",
            description="Webhooks indicates the number of webhooks registered in this "
            "configuration",
        ),
        _age_column(),
    )


def _webhook_configuration(configuration: Mapping[str, Any], now: datetime) -> Cells:
    return [
        _name(configuration),
        len(configuration.get("webhooks") or ()),
        _age(configuration, now),
    ]


_PRINTERS[("admissionregistration.k8s.io", "mutatingwebhookconfigurations")] = Printer(
    _webhook_columns(), _webhook_configuration
)
_PRINTERS[("admissionregistration.k8s.io", "validatingwebhookconfigurations")] = Printer(
    _webhook_columns(), _webhook_configuration
)


@_printer(
    ("flowcontrol.apiserver.k8s.io", "flowschemas"),
    columns=(
        _name_column(),
        Column("PriorityLevel", description=_doc("PriorityLevelConfigurationReference.name")),
        Column("MatchingPrecedence", description=_doc("FlowSchemaSpec.matchingPrecedence")),
        Column("DistinguisherMethod", description=_doc("FlowSchemaSpec.distinguisherMethod")),
        _age_column(),
        Column(
            "MissingPL",
            description="references a broken or non-existent PriorityLevelConfiguration",
        ),
    ),
)
def _flow_schema(schema: Mapping[str, Any], now: datetime) -> Cells:
    spec = schema.get("spec") or {}
    dangling = "?"
    for condition in _get(schema, "status", "conditions", default=()):
        if condition.get("type") == "Dangling":
            dangling = condition.get("status", "")
            break
    return [
        _name(schema),
        _get(spec, "priorityLevelConfiguration", "name", default=""),
        int(spec.get("matchingPrecedence") or 0),
        _get(spec, "distinguisherMethod", "type", default="<none>"),
        _age(schema, now),
        dangling,
    ]


@_printer(
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
    columns=(
        _name_column(),
        Column("Type", description=_doc("PriorityLevelConfigurationSpec.type")),
        Column(
            "NominalConcurrencyShares",
            description=_doc("LimitedPriorityLevelConfiguration.nominalConcurrencyShares"),
        ),
        Column("Queues", description=_doc("QueuingConfiguration.queues")),
        Column("HandSize", description=_doc("QueuingConfiguration.handSize")),
        Column("QueueLengthLimit", description=_doc("QueuingConfiguration.queueLengthLimit")),
        _age_column(),
    ),
)
def _priority_level(level: Mapping[str, Any], now: datetime) -> Cells:
    spec = level.get("spec") or {}
    shares = queues = hand_size = queue_length = "<none>"
    limited = spec.get("limited")
    if limited is not None:
        # v1beta2 calls the shares assuredConcurrencyShares.
        shares = limited.get("nominalConcurrencyShares", limited.get("assuredConcurrencyShares", 0))
        queuing = _get(limited, "limitResponse", "queuing")
        if queuing is not None:
            queues = queuing.get("queues", 0)
            hand_size = queuing.get("handSize", 0)
            queue_length = queuing.get("queueLengthLimit", 0)
    return [
        _name(level),
        spec.get("type", ""),
        shares,
        queues,
        hand_size,
        queue_length,
        _age(level, now),
    ]


@_printer(
    ("apiregistration.k8s.io", "apiservices"),
    columns=(
        _name_column(),
        Column("Service", description="The reference to the service that hosts this API endpoint."),
        Column("Available", description="Whether this service is available."),
        _age_column(),
    ),
)
def _api_service(api_service: Mapping[str, Any], now: datetime) -> Cells:
    service = _get(api_service, "spec", "service")
    reference = "Local"
    if service:
        reference = f"{service.get('namespace', '')}/{service.get('name', '')}"
    available = "Unknown"
    for condition in _get(api_service, "status", "conditions", default=()):
        if condition.get("type") == "Available":
            status = condition.get("status", "Unknown")
            if status != "True" and condition.get("reason"):
                available = f"{status} ({condition['reason']})"
            else:
                available = status
            break
    return [_name(api_service), reference, available, _age(api_service, now)]


# Resources without a printer: the API server's default table.


def _created_at(obj: Mapping[str, Any], now: datetime) -> Cells:
    timestamp = parse_time(_get(obj, "metadata", "creationTimestamp"))
    if timestamp is None:
        # Go's zero time, as the server prints a missing timestamp.
        text = "0001-01-01T00:00:00Z"
    else:
        text = timestamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [_name(obj), text]


DEFAULT_PRINTER = Printer(
    (
        _name_column(),
        Column("Created At", type="date", description=_doc("ObjectMeta.creationTimestamp")),
    ),
    _created_at,
)


# Custom resources: the CRD's additionalPrinterColumns.


class JSONPathError(ValueError):
    """A printer column's JSONPath is outside the supported subset."""


_FILTER = re.compile(
    r"^\?\(@((?:\.[^.=!<>\s]+)+)\s*(?:(==|!=)\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s)]+)))?\s*\)$",
)


def _split_fields(path: str) -> list[str]:
    # `.a.b\.c` -> ["a", "b.c"]
    fields: list[str] = []
    current = []
    escaped = False
    for character in path:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ".":
            if current:
                fields.append("".join(current))
            current = []
        else:
            current.append(character)
    if current:
        fields.append("".join(current))
    return fields


def compile_json_path(expression: str) -> Callable[[Any], list[Any]]:
    """
    Compile the JSONPath subset CRD printer columns use: C{.a.b},
    escaped dots (C{.a\\.b}), C{['key']}, C{[0]}, C{[-1]}, C{[*]}, and
    filters C{[?(@.type=="Ready")]} (C{==}, C{!=}, or existence).  The
    expression may be wrapped in braces.

    @return: a function from a JSON value to the list of matches.
    @raise JSONPathError: for anything else.
    """
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[Callable[[list[Any]], list[Any]]] = []
    position = 0
    while position < len(text):
        character = text[position]
        if character == ".":
            end = position + 1
            # A field name runs to the next bracket or unescaped dot.
            while end < len(text) and text[end] != "[":
                if text[end] == "." and text[end - 1] != "\\":
                    break
                end += 1
            for field_name in _split_fields(text[position:end]):
                steps.append(_field_step(field_name))
            position = end
        elif character == "[":
            end = _matching_bracket(text, position)
            steps.append(_bracket_step(text[position + 1 : end].strip(), expression))
            position = end + 1
        else:
            raise JSONPathError(f"unsupported JSONPath {expression!r}")

    def evaluate(document: Any) -> list[Any]:
        values = [document]
        for step in steps:
            values = step(values)
            if not values:
                break
        return values

    return evaluate


def _matching_bracket(text: str, start: int) -> int:
    depth = 0
    quote = ""
    for index in range(start, len(text)):
        character = text[index]
        if quote:
            if character == quote:
                quote = ""
        elif character in "'\"":
            quote = character
        elif character == "[":
            depth += 1
        elif character == "]":
            depth -= 1
            if depth == 0:
                return index
    raise JSONPathError(f"unbalanced brackets in {text!r}")


def _field_step(name: str) -> Callable[[list[Any]], list[Any]]:
    def step(values: list[Any]) -> list[Any]:
        return [value[name] for value in values if isinstance(value, Mapping) and name in value]

    return step


def _bracket_step(inner: str, expression: str) -> Callable[[list[Any]], list[Any]]:
    if inner == "*":

        def every(values: list[Any]) -> list[Any]:
            result: list[Any] = []
            for value in values:
                if isinstance(value, list):
                    result.extend(value)
                elif isinstance(value, Mapping):
                    result.extend(value[key] for key in sorted(value))
            return result

        return every
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _field_step(inner[1:-1])
    if re.fullmatch(r"-?[0-9]+", inner):
        index = int(inner)

        def item(values: list[Any]) -> list[Any]:
            result = []
            for value in values:
                if isinstance(value, list) and -len(value) <= index < len(value):
                    result.append(value[index])
            return result

        return item
    match = _FILTER.match(inner)
    if match is None:
        raise JSONPathError(f"unsupported JSONPath {expression!r}")
    field_path, operator, double, single, bare = match.groups()
    fields = _split_fields(field_path)
    wanted = next((group for group in (double, single, bare) if group is not None), None)

    def matches(candidate: Any) -> bool:
        for field_name in fields:
            if not isinstance(candidate, Mapping) or field_name not in candidate:
                return False
            candidate = candidate[field_name]
        if operator is None:
            return True
        text = _text(candidate)
        return (text == wanted) if operator == "==" else (text != wanted)

    def select(values: list[Any]) -> list[Any]:
        result = []
        for value in values:
            if isinstance(value, list):
                result.extend(element for element in value if matches(element))
        return result

    return select


def _go_float(value: float) -> str:
    # Go's %v for float64: shortest representation, exponent outside
    # [1e-4, 1e21).
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        number = int(exponent)
        return f"{mantissa}e{'+' if number >= 0 else '-'}{abs(number):02d}"
    return text


def _text(value: Any) -> str:
    # How client-go's JSONPath prints a value (fmt.Fprint of the decoded
    # JSON value).
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{key}:{_text(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_text(element) for element in value) + "]"
    return str(value)


def _typed_cell(column_type: str, value: Any, now: datetime) -> Any:
    # The API server's cellForJSONValue: a cell of the wrong type is null.
    if value is None:
        return None
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None
    if column_type == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        timestamp = parse_time(value)
        return "<invalid>" if timestamp is None else human_duration(now - timestamp)
    return None


def _custom_printer(resource_type: ResourceType) -> Printer:
    columns = [_name_column()]
    evaluators = []
    for column in resource_type.printer_columns:
        columns.append(
            Column(
                column.name,
                type=column.type,
                format=column.format,
                description=column.description,
                priority=column.priority,
            )
        )
        evaluators.append((column.type, compile_json_path(column.json_path)))

    def cells(obj: Mapping[str, Any], now: datetime) -> Cells:
        row: Cells = [_name(obj)]
        for column_type, evaluate in evaluators:
            results = evaluate(obj)
            if not results:
                row.append(None)
            elif column_type == "string":
                row.append(_text(results[0]))
            else:
                row.append(_typed_cell(column_type, results[0], now))
        return row

    return Printer(tuple(columns), cells)


_CUSTOM_PRINTERS: dict[ResourceType, Printer] = {}


def printer_for(resource_type: ResourceType) -> Printer:
    """
    The printer the API server uses for a resource: its own, the CRD's
    columns, or the default C{Name}/C{Created At}.

    @raise JSONPathError: if a CRD column's JSONPath is unsupported.
    """
    if resource_type.custom:
        printer = _CUSTOM_PRINTERS.get(resource_type)
        if printer is None:
            printer = _CUSTOM_PRINTERS[resource_type] = _custom_printer(resource_type)
        return printer
    return _PRINTERS.get(resource_type.group_resource, DEFAULT_PRINTER)


def _list_metadata(list_meta: Mapping[str, Any] | None) -> dict[str, Any]:
    # metav1.ListMeta omits empty fields.
    metadata = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        value = (list_meta or {}).get(key)
        if value not in (None, ""):
            metadata[key] = value
    return metadata


def partial_object_metadata(
    obj: Mapping[str, Any],
    api_version: str = "meta.k8s.io/v1",
) -> dict[str, Any]:
    """The C{PartialObjectMetadata} form of an object: its metadata only."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": obj.get("metadata") or {},
    }


def to_table(
    rt: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    list_meta: Mapping[str, Any] | None = None,
    include_object: str = "Metadata",
    now: datetime | float | None = None,
    *,
    no_headers: bool = False,
    api_version: str = "meta.k8s.io/v1",
) -> dict[str, Any]:
    """
    Render objects as a C{Table}.

    @param rt: the resource the objects belong to.
    @param objects: the objects, already rendered, with C{apiVersion} and
        C{kind}; for a single-object GET, a one-element sequence.
    @param list_meta: the list's C{metadata} (C{resourceVersion},
        C{continue}, C{remainingItemCount}); for a single object, its
        C{resourceVersion}.
    @param include_object: the C{includeObject} parameter: C{"None"} (rows
        carry no object), C{"Metadata"} (the default:
        C{PartialObjectMetadata}) or C{"Object"} (the whole object).
    @param now: the time ages are computed against (a datetime, or seconds
        since the epoch such as C{reactor.seconds()}); the wall clock if
        C{None}.
    @param no_headers: the deprecated C{noHeaders} option: omit the column
        definitions.
    @param api_version: C{meta.k8s.io/v1} or C{meta.k8s.io/v1beta1}, as
        negotiated.
    @raise InvalidTableRequest: for an unknown C{includeObject} or version.
    @return: the Table, ready for JSON encoding.
    """
    if api_version not in TABLE_API_VERSIONS:
        raise InvalidTableRequest(f"no Table exists in group version {api_version}")
    if include_object == "":
        include_object = "Metadata"
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise InvalidTableRequest(f"unrecognized includeObject value: {include_object!r}")
    moment = _to_datetime(now)
    printer = printer_for(rt)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer.cells(obj, moment)}
        if printer.conditions is not None:
            conditions = printer.conditions(obj)
            if conditions:
                row["conditions"] = conditions
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = partial_object_metadata(obj, api_version)
        else:
            row["object"] = None
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": _list_metadata(list_meta),
        "columnDefinitions": None if no_headers else printer.column_definitions(),
        "rows": rows,
    }

