# -*- test-case-name: tests.test_kube_controllers -*-
"""
Bring a new simulated cluster to the state of a freshly imported real one.

That is the state a real cluster is in once Rancher's import manifest
has been applied to it and its controllers have settled: the namespaces
kube-apiserver always keeps; every object of the import manifest as
C{kubectl apply} creates it (with its C{last-applied-configuration}); the
C{cattle-system/cattle} ServiceAccount
with the uid, and its token Secret with the token, that the cluster's
tunnel params announce; C{kube-root-ca.crt} and a C{default} ServiceAccount
in every namespace; and whatever the controllers would have done to the
template's objects that do not show it yet (CRDs without status, token
Secrets without a token, workloads without status, Nodes without a Lease).
The agent Deployment rolls out through the installed controllers.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from twisted.logger import Logger

from scaleagent.identity import ClusterIdentity
from scaleagent.kube.controllers import _crds, _namespaces, _nodes, _tokens, _workloads
from scaleagent.kube.controllers._common import (
    LAST_APPLIED_ANNOTATION,
    NAMESPACES,
    SECRETS,
    SERVICE_ACCOUNTS,
    b64,
    get_or_none,
    go_json,
    list_items,
    metadata_of,
    resolve_kind,
    sorted_map,
    uid_of,
)
from scaleagent.kube.controllers._manager import Controllers, controllers_for
from scaleagent.kube.controllers._tokens import (
    SERVICE_ACCOUNT_NAME_ANNOTATION,
    SERVICE_ACCOUNT_TOKEN_TYPE,
    SERVICE_ACCOUNT_UID_ANNOTATION,
)
from scaleagent.kube.store import ObjectStore

_log = Logger()

#: The namespace kubectl uses for objects that name none (the kubeconfig
#: Rancher builds names none).
DEFAULT_NAMESPACE = "default"


def bootstrap(store: ObjectStore, identity: ClusterIdentity, import_objects: Iterable[Mapping]) -> None:
    """
    Fill a new cluster's store with what a real cluster holds after the
    import. Running it again changes nothing (objects that exist are kept
    as they are).

    @param store: the cluster's objects, with L{install_controllers}
        already connected to it.
    @param identity: the cluster's identity; its announced cattle account
        is created if it has none yet.
    @param import_objects: the import manifest's objects, in order (what
        L{scaleagent.rancher.manifest.AgentSettings.objects} holds).
    @raise RuntimeError: if no controllers are installed on C{store}.
    """
    controllers = controllers_for(store)
    if controllers is None:
        raise RuntimeError("bootstrap() needs install_controllers() to have been called on the store")
    if controllers.identity is not identity:
        raise RuntimeError("bootstrap() was given another identity than the installed controllers")
    account = identity.ensure_cattle_account()

    for name in _namespaces.SYSTEM_NAMESPACES:
        _ensure_namespace(controllers, name)
    for manifest in import_objects:
        apply_created(controllers, manifest)

    _ensure_namespace(controllers, account.namespace)
    _ensure_cattle_service_account(controllers)
    _ensure_cattle_token(controllers)

    for namespace in list_items(store, NAMESPACES):
        if (namespace.get("status") or {}).get("phase") == "Active" and not metadata_of(namespace).get(
            "deletionTimestamp"
        ):
            name = metadata_of(namespace)["name"]
            _namespaces.ensure_root_ca(controllers, name)
            _namespaces.ensure_default_service_account(controllers, name)

    _crds.serve_stored_crds(controllers)
    _tokens.fill_token_secrets(controllers)
    _workloads.converge_workloads(controllers)
    _nodes.ensure_node_leases(controllers)


def _ensure_namespace(controllers: Controllers, name: str) -> None:
    if get_or_none(controllers.store, NAMESPACES, "", name) is None:
        controllers.create_quietly(
            NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )


def apply_created(controllers: Controllers, manifest: Mapping) -> None:
    """
    What C{kubectl apply} does with an object that does not exist yet:
    default its namespace, record it in the last-applied annotation and
    create it. An object that exists is left alone.
    """
    api_version = manifest.get("apiVersion", "")
    kind = manifest.get("kind", "")
    resource_type = resolve_kind(controllers.registry, api_version, kind) if api_version and kind else None
    if resource_type is None:
        # kubectl fails on the object ("no matches for kind") and goes on.
        _log.warn(
            "Import manifest object of unknown kind {kind} ({api_version}) skipped",
            kind=kind,
            api_version=api_version,
        )
        return
    metadata = dict(manifest.get("metadata") or {})
    if resource_type.namespaced and not metadata.get("namespace"):
        metadata["namespace"] = DEFAULT_NAMESPACE
    elif not resource_type.namespaced:
        # kubectl's builder clears the namespace of a cluster-scoped object
        # (FilterNamespace) before it records the last-applied configuration,
        # so a manifest that gives one (Rancher's cattle-admin-binding) is
        # recorded without it.
        metadata.pop("namespace", None)
    namespace = metadata.get("namespace", "") if resource_type.namespaced else ""
    name = metadata.get("name", "")
    if get_or_none(controllers.store, resource_type, namespace, name) is not None:
        return
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(LAST_APPLIED_ANNOTATION, None)
    # kubectl serialises the object with an empty annotations map in it
    # (not none), then adds that text under the annotation.
    recorded = dict(manifest)
    recorded["metadata"] = {**metadata, "annotations": annotations}
    annotations[LAST_APPLIED_ANNOTATION] = go_json(recorded) + "\n"
    created = dict(manifest)
    created["metadata"] = {**metadata, "annotations": sorted_map(annotations)}
    controllers.create_quietly(resource_type, namespace, created)


def _ensure_cattle_service_account(controllers: Controllers) -> None:
    """
    C{cattle-system/cattle} with the uid the announced token names (the
    installed admission gives it that uid); one with another uid, such as
    a template's, is replaced.
    """
    account = controllers.identity.ensure_cattle_account()
    store = controllers.store
    existing = get_or_none(store, SERVICE_ACCOUNTS, account.namespace, account.service_account)
    if existing is not None and uid_of(existing) == account.service_account_uid:
        return
    if existing is not None:
        controllers.delete_quietly(
            SERVICE_ACCOUNTS,
            account.namespace,
            account.service_account,
            uid=uid_of(existing),
        )
    created = controllers.create_quietly(
        SERVICE_ACCOUNTS,
        account.namespace,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account.service_account, "namespace": account.namespace},
        },
    )
    if created is not None and uid_of(created) != account.service_account_uid:  # pragma: no cover - defensive
        raise RuntimeError("the cattle ServiceAccount did not get its announced uid")


def _ensure_cattle_token(controllers: Controllers) -> None:
    """The announced token's Secret, holding exactly that token."""
    account = controllers.identity.ensure_cattle_account()
    store = controllers.store
    token = b64(account.token)
    existing = get_or_none(store, SECRETS, account.namespace, account.secret_name)
    if existing is not None:
        if (existing.get("data") or {}).get("token") == token:
            return
        new = dict(existing)
        new["data"] = sorted_map({**(existing.get("data") or {}), "token": token})
        controllers.update_quietly(SECRETS, account.namespace, account.secret_name, new)
        return
    controllers.create_quietly(
        SECRETS,
        account.namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": account.secret_name,
                "namespace": account.namespace,
                "annotations": {
                    SERVICE_ACCOUNT_NAME_ANNOTATION: account.service_account,
                    SERVICE_ACCOUNT_UID_ANNOTATION: account.service_account_uid,
                },
            },
            "type": SERVICE_ACCOUNT_TOKEN_TYPE,
            # The token controller fills in ca.crt and namespace and keeps
            # a token that is already there.
            "data": {"token": token},
        },
    )
