# -*- test-case-name: tests.test_kube_resources -*-
"""
What the synthetic API serves: one L{ResourceType} per resource (its group,
version, kind, scope, verbs, subresources), looked up by URL parts or kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    """
    One served resource, e.g. C{apps/v1 deployments}.

    @ivar group: API group, C{""} for the core group.
    @ivar version: the version served (one per resource).
    @ivar resource: plural, lower-case URL name (C{deployments}).
    @ivar kind: C{Deployment}.
    @ivar namespaced: whether objects live in a namespace.
    @ivar verbs: the verbs discovery lists.
    @ivar subresources: e.g. C{("status", "scale")}.
    @ivar short_names: e.g. C{("deploy",)}.
    @ivar categories: e.g. C{("all",)}.
    @ivar singular: lower-case singular name.
    @ivar list_kind: C{DeploymentList}.
    """

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = field(default="")
    list_kind: str = field(default="")

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())
        if not self.list_kind:
            object.__setattr__(self, "list_kind", self.kind + "List")

    @property
    def api_version(self) -> str:
        """C{apps/v1}, or C{v1} for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> tuple[str, str]:
        """The storage key: objects are shared by every version of a resource."""
        return (self.group, self.resource)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources
