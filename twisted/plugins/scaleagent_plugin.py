from twisted.application.service import ServiceMaker

scaleagent = ServiceMaker(
    "scaleagent",
    "scaleagent.tap",
    "Simulate many imported Kubernetes clusters for a Rancher server.",
    "scaleagent",
)
