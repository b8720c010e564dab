"""
scaleagent: makes one machine look like thousands of imported Kubernetes
clusters to a Rancher server.
"""

__version__ = "0.1.0"
