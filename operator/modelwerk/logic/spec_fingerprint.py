"""A fingerprint of a Deployment's spec without what autoscalers own (``spec.replicas``).

An HPA or KEDA writes ``spec.replicas`` through the scale subresource, which bumps
``metadata.generation`` like any edit. Decisions that mean "the person changed the spec" (an
aborted version is retried after a spec change) compare this fingerprint instead.
"""

from __future__ import annotations

import hashlib
import json

from modelwerk.api.v1alpha1.deployment import Deployment


def spec_hash(dep: Deployment) -> str:
    """The spec without ``replicas`` (which autoscalers own), as a short stable hash.

    >>> from modelwerk.api.v1alpha1 import Deployment
    >>> def dep(**spec): return Deployment.from_k8s(
    ...     {"metadata": {"name": "d", "namespace": "n"}, "spec": {"modelVersion": "m", **spec}})
    >>> spec_hash(dep(replicas=2)) == spec_hash(dep(replicas=9))
    True
    >>> spec_hash(dep(replicas=2)) == spec_hash(dep(replicas=2, progressDeadlineSeconds=60))
    False
    """
    body = dep.spec.to_k8s()
    body.pop("replicas", None)
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
