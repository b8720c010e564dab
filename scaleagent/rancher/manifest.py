# -*- test-case-name: tests.test_rancher_manifest -*-
"""
Read the agent's settings out of the import manifest Rancher serves at a
cluster registration token's C{manifestUrl}, exactly where the real agent
finds them: the C{cattle-credentials-*} Secret (mounted at
C{/cattle-credentials}: C{url}, C{token}, C{namespace}) and the environment
of the C{cluster-register} container of the C{cattle-cluster-agent}
Deployment (C{CATTLE_SERVER}, C{CATTLE_CA_CHECKSUM}, C{STRICT_VERIFY}, ...).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import yaml

from scaleagent.yamlerrors import yaml_problem

AGENT_DEPLOYMENT = "cattle-cluster-agent"
AGENT_CONTAINER = "cluster-register"
AGENT_NAMESPACE = "cattle-system"
CREDENTIALS_PREFIX = "cattle-credentials-"


class ManifestError(ValueError):
    """The import manifest is not one this agent can work with."""


@dataclass(frozen=True)
class AgentSettings:
    """
    What a real C{cattle-cluster-agent} started from this manifest would use.

    @ivar server_url: the credentials' C{url}: where both tunnels go.
    @ivar token: the registration token (a secret: never log it).
    @ivar namespace: the credentials' C{namespace} (empty in the bootstrap
        manifest, the cluster id in the one Rancher applies later).
    @ivar ca_checksum: C{CATTLE_CA_CHECKSUM}; empty means "trust the system
        roots".
    @ivar strict_verify: C{STRICT_VERIFY=true}: trust only Rancher's CA.
    @ivar server_version: C{CATTLE_SERVER_VERSION}, e.g. C{v2.14.4}.
    @ivar features: C{CATTLE_FEATURES} parsed (absent in bootstrap manifests).
    @ivar credential_name: the name of the credentials Secret.
    @ivar agent_image: the C{cluster-register} image.
    @ivar objects: every object of the manifest, in order, so a simulated
        cluster can hold what C{kubectl apply} of it would have created.
    """

    server_url: str
    token: str = field(repr=False)
    namespace: str
    ca_checksum: str
    strict_verify: bool
    server_version: str
    install_uuid: str
    features: Mapping[str, bool]
    credential_name: str
    agent_image: str
    env: Mapping[str, str] = field(repr=False)
    objects: tuple[Mapping[str, Any], ...] = field(repr=False)


def _decode_secret_value(secret: Mapping[str, Any], key: str) -> str:
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return str(string_data[key])
    value = data.get(key)
    if value is None:
        raise ManifestError(f"Secret {secret['metadata']['name']} has no {key!r} key")
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ManifestError(
            f"Secret {secret['metadata']['name']} key {key!r} is not base64 text"
        ) from None


def _parse_features(value: str) -> dict[str, bool]:
    features: dict[str, bool] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, enabled = item.partition("=")
        features[name.strip()] = enabled.strip().lower() == "true"
    return features


def parse_import_manifest(text: str) -> AgentSettings:
    """
    Parse the YAML that C{kubectl apply -f <manifestUrl>} would apply.

    @raise ManifestError: if it is not YAML, or lacks the credentials
        Secret or the agent Deployment.
    """
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as e:
        problem, mark = yaml_problem(e)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ManifestError(f"the import manifest is not valid YAML: {problem}{where}") from None
    objects = []
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            raise ManifestError("the import manifest holds something that is not an object")
        objects.append(document)

    deployment = _find(objects, "Deployment", AGENT_DEPLOYMENT)
    if deployment is None:
        raise ManifestError(
            f"the import manifest has no Deployment {AGENT_NAMESPACE}/{AGENT_DEPLOYMENT}"
        )
    containers = (
        deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    )
    container = next((c for c in containers if c.get("name") == AGENT_CONTAINER), None)
    if container is None:
        raise ManifestError(f"the agent Deployment has no {AGENT_CONTAINER!r} container")
    env = {
        str(item["name"]): str(item.get("value", ""))
        for item in container.get("env") or []
        if isinstance(item, dict) and "name" in item
    }

    credential_name = env.get("CATTLE_CREDENTIAL_NAME", "")
    secret = None
    if credential_name:
        secret = _find(objects, "Secret", credential_name)
    if secret is None:
        # Manifests before 2.9.9/2.10.5/2.11.1 do not name the Secret in the
        # environment: take the one the agent mounts.
        secret = next(
            (
                obj
                for obj in objects
                if obj.get("kind") == "Secret"
                and str(obj.get("metadata", {}).get("name", "")).startswith(CREDENTIALS_PREFIX)
            ),
            None,
        )
    if secret is None:
        raise ManifestError("the import manifest has no cattle-credentials Secret")

    server_url = _decode_secret_value(secret, "url").strip() or env.get("CATTLE_SERVER", "")
    token = _decode_secret_value(secret, "token")
    if not server_url.startswith(("https://", "http://")):
        raise ManifestError(f"the credentials url is not an http(s) URL: {server_url!r}")
    if not token:
        raise ManifestError("the credentials Secret holds an empty token")
    try:
        namespace = _decode_secret_value(secret, "namespace")
    except ManifestError:
        namespace = ""

    return AgentSettings(
        server_url=server_url,
        token=token,
        namespace=namespace,
        ca_checksum=env.get("CATTLE_CA_CHECKSUM", "").strip(),
        strict_verify=env.get("STRICT_VERIFY", "").strip().lower() == "true",
        server_version=env.get("CATTLE_SERVER_VERSION", ""),
        install_uuid=env.get("CATTLE_INSTALL_UUID", ""),
        features=_parse_features(env.get("CATTLE_FEATURES", "")),
        credential_name=str(secret["metadata"]["name"]),
        agent_image=str(container.get("image", "")),
        env=env,
        objects=tuple(objects),
    )


def _find(objects: list[dict], kind: str, name: str) -> Optional[dict]:
    for obj in objects:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return obj
    return None
