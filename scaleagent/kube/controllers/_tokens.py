# -*- test-case-name: tests.test_kube_controllers -*-
"""
The service-account token controller, with the token in the create response.

Like kube-controller-manager's C{TokensController} it fills in
C{kubernetes.io/service-account-token} Secrets and deletes the ones whose
ServiceAccount is gone.

The real controller works from informers, a moment after the Secret is
written. Rancher's impersonation setup polls for the token for only about
0.1 s, so here the filling happens in mutating admission: the token is in
the create response already. What the real controller does later (delete a
Secret whose ServiceAccount does not exist, drop references to deleted
Secrets, delete the tokens of a deleted ServiceAccount) is done by the
observer, right after the change that calls for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

from scaleagent.kube.controllers._common import (
    SECRETS,
    SERVICE_ACCOUNTS,
    b64,
    get_or_none,
    list_items,
    metadata_of,
    sorted_map,
    uid_of,
)
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.store import ADDED, DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SERVICE_ACCOUNT_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _annotations(obj: Mapping) -> Mapping[str, str]:
    return metadata_of(obj).get("annotations") or {}


def _is_token_secret(obj: Mapping) -> bool:
    return obj.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE


def _references(secret: Mapping, account: Mapping) -> bool:
    """C{serviceaccount.IsServiceAccountToken}: this token is that account's."""
    annotations = _annotations(secret)
    if annotations.get(SERVICE_ACCOUNT_NAME_ANNOTATION) != metadata_of(account).get("name"):
        return False
    uid = annotations.get(SERVICE_ACCOUNT_UID_ANNOTATION)
    return not uid or uid == uid_of(account)


def _account_of(controllers: Controllers, secret: Mapping) -> Optional[dict]:
    """
    The ServiceAccount a token Secret names (and, when it records one, with
    that uid), as the controller looks it up; L{None} if there is none.
    """
    annotations = _annotations(secret)
    name = annotations.get(SERVICE_ACCOUNT_NAME_ANNOTATION)
    if not name:
        return None
    account = get_or_none(
        controllers.store, SERVICE_ACCOUNTS, metadata_of(secret).get("namespace", ""), name
    )
    if account is None:
        return None
    uid = annotations.get(SERVICE_ACCOUNT_UID_ANNOTATION)
    if uid and uid != uid_of(account):
        return None
    return account


def populated(controllers: Controllers, secret: Mapping, account: Mapping) -> Optional[dict]:
    """
    C{generateTokenIfNeeded}: the Secret with the cluster CA, its namespace
    and a legacy token for C{account} filled in where missing (the CA also
    where it differs), and the account annotations set; L{None} when
    nothing is missing.
    """
    data = secret.get("data") or {}
    ca = controllers.ca_base64
    needs_ca = data.get("ca.crt") != ca
    needs_namespace = not data.get("namespace")
    needs_token = not data.get("token")
    if not (needs_ca or needs_namespace or needs_token):
        return None
    metadata = metadata_of(secret)
    namespace = metadata.get("namespace", "")
    account_name = metadata_of(account)["name"]
    account_uid = uid_of(account)
    new_data = dict(data)
    if needs_ca:
        new_data["ca.crt"] = ca
    if needs_namespace:
        new_data["namespace"] = b64(namespace)
    if needs_token:
        token = controllers.identity.mint_legacy_token(
            namespace, account_name, account_uid, metadata.get("name", "")
        )
        new_data["token"] = b64(token)
    annotations = dict(_annotations(secret))
    annotations[SERVICE_ACCOUNT_NAME_ANNOTATION] = account_name
    annotations[SERVICE_ACCOUNT_UID_ANNOTATION] = account_uid
    new = dict(secret)
    new["metadata"] = {**metadata, "annotations": sorted_map(annotations)}
    new["data"] = sorted_map(new_data)
    return new


def admit_secret(
    controllers: Controllers,
    operation: str,
    resource_type: ResourceType,
    new: dict,
    old: Optional[dict],
) -> Optional[dict]:
    """Fill a token Secret before it is stored, so the response has the token."""
    if not _is_token_secret(new):
        return None
    account = _account_of(controllers, new)
    if account is None:
        # The observer deletes it once it is stored, as the real one would.
        return None
    return populated(controllers, new, account)


def admit_service_account(
    controllers: Controllers,
    operation: str,
    resource_type: ResourceType,
    new: dict,
    old: Optional[dict],
) -> Optional[dict]:
    """
    Give C{cattle-system/cattle} the uid its announced token was minted
    for, whoever creates it: the tunnel params announce that token for the
    cluster's whole life, and a legacy token only authenticates while its
    ServiceAccount has the uid it names.
    """
    if operation != "CREATE":
        return None
    account = controllers.identity.cattle_account
    if account is None:
        return None
    metadata = new["metadata"]
    if (
        metadata.get("namespace") != account.namespace
        or metadata.get("name") != account.service_account
        or metadata.get("uid") == account.service_account_uid
    ):
        return None
    return {**new, "metadata": {**metadata, "uid": account.service_account_uid}}


def observe_secret(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    if not _is_token_secret(obj):
        return
    store = controllers.store
    metadata = metadata_of(obj)
    namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
    if event == DELETED:
        _drop_reference(controllers, obj)
        return
    current = get_or_none(store, SECRETS, namespace, name)
    if current is None or uid_of(current) != uid_of(obj):
        return
    account = _account_of(controllers, current)
    if account is None:
        # syncSecret: a token whose ServiceAccount does not exist is deleted
        # (with a uid precondition, so a recreated Secret survives).
        controllers.delete_quietly(SECRETS, namespace, name, uid=uid_of(current))
        return
    new = populated(controllers, current, account)
    if new is not None:
        controllers.update_quietly(SECRETS, namespace, name, new)


def observe_service_account(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    metadata = metadata_of(obj)
    namespace = metadata.get("namespace", "")
    if event == DELETED:
        # syncServiceAccount: the tokens of a deleted account go with it.
        for secret in list_items(controllers.store, SECRETS, namespace):
            if _is_token_secret(secret) and _references(secret, obj):
                secret_metadata = metadata_of(secret)
                controllers.delete_quietly(
                    SECRETS, namespace, secret_metadata["name"], uid=secret_metadata.get("uid")
                )
        return
    if event != ADDED:
        return
    # A token Secret that outlived its missing account (written before the
    # controllers were installed, or restored) is filled once the account
    # appears, as the real controller's next sync of it would.
    for secret in list_items(controllers.store, SECRETS, namespace):
        if not _is_token_secret(secret) or not _references(secret, obj):
            continue
        new = populated(controllers, secret, obj)
        if new is not None:
            controllers.update_quietly(SECRETS, namespace, metadata_of(secret)["name"], new)


def _drop_reference(controllers: Controllers, secret: Mapping) -> None:
    """C{removeSecretReference}: a deleted token leaves its account's C{secrets}."""
    account = _account_of(controllers, secret)
    if account is None:
        return
    references = account.get("secrets") or []
    name = metadata_of(secret).get("name")
    kept = [reference for reference in references if reference.get("name") != name]
    if len(kept) == len(references):
        return
    new = dict(account)
    new["secrets"] = kept
    account_metadata = metadata_of(account)
    controllers.update_quietly(
        SERVICE_ACCOUNTS, account_metadata.get("namespace", ""), account_metadata["name"], new
    )


def fill_token_secrets(controllers: Controllers) -> None:
    """
    Converge every token Secret already stored (the template's): fill it,
    or delete it when its account is missing. Used by bootstrap.
    """
    store = controllers.store
    for secret in list_items(store, SECRETS):
        if not _is_token_secret(secret):
            continue
        metadata = metadata_of(secret)
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        account = _account_of(controllers, secret)
        if account is None:
            controllers.delete_quietly(SECRETS, namespace, name, uid=metadata.get("uid"))
            continue
        new = populated(controllers, secret, account)
        if new is not None:
            controllers.update_quietly(SECRETS, namespace, name, new)
