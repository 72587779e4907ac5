"""Operator start-up and shutdown: identity, kopf settings, the work queue, /metrics."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelwerk.handlers.context import Context
from modelwerk.handlers.kinds import CHILD_RESOURCES, RECONCILERS, child_selector
from modelwerk.handlers.leader import LeaderElector
from modelwerk.handlers.reconcile import Key, reconcile
from modelwerk.handlers.workqueue import WorkQueue
from modelwerk.kube import credentials
from modelwerk.kube.client import Kube
from modelwerk.metrics import LEADER, REGISTRY
from modelwerk.settings import OperatorSettings

PREFIX = "modelwerk.dev"


@kopf.on.login(id="login")
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf and the operator's own client act as the same identity (MODELWERK_KUBECONFIG)."""
    config = OperatorSettings()
    creds = credentials.load(config.kubeconfig, config.kube_context)
    token = creds.bearer_token()
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        ca_data=creds.ca_data,
        insecure=creds.insecure,
        token=token,
        certificate_path=creds.cert_path,
        certificate_data=creds.cert_data,
        private_key_path=creds.key_path,
        private_key_data=creds.key_data,
        scheme="Bearer" if token else None,
        default_namespace=creds.namespace,
    )


@kopf.on.startup(id="startup")
async def startup(
    settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    config = OperatorSettings()
    # Should any kopf state ever be persisted, it lives in annotations under our own prefix;
    # the status schema stays strictly ours.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # Children are watched for their owner's sake only: let the API server filter them, so the
    # operator never receives (nor holds) the cluster's other Pods, Services, Deployments, Jobs.
    for rt in CHILD_RESOURCES:
        settings.watching.label_selectors[rt.group or rt.version, rt.plural] = child_selector(rt)
    # The start-up burst sets the operator's memory for good: what the allocators took for it
    # they keep. Two things hold the listed objects during that burst (measured with 1,000
    # Deployments and ~4,000 children in bench/operator/results.md):
    # - the initial lists, decoded a page at a time: pages of 100 objects, not the whole list
    #   (saved ~21 MiB against pages of 500);
    # - kopf's per-object workers, each keeping its object's last event while it idles before
    #   exiting. Our event handlers only enqueue a key, so idling 0.5 s rather than kopf's 5 s
    #   lets a worker go, with its object, long before the listing of the others is done
    #   (saved ~45 MiB). A later event simply starts a new worker.
    settings.watching.chunk_size = 100
    settings.queueing.idle_timeout = 0.5
    kube = Kube(credentials.load(config.kubeconfig, config.kube_context), identity=config.identity)

    async def run(key: Any) -> float | None:
        return await reconcile(ctx, RECONCILERS[key.kind], key)

    queue = WorkQueue(
        run,
        workers=config.workers,
        resync_seconds=config.resync_seconds,
        max_backoff_seconds=config.max_backoff_seconds,
        paused=config.leader_election,  # a replica acts only once it holds the lease
    )
    elector = None
    if config.leader_election:
        elector = LeaderElector(
            kube,
            queue,
            namespace=config.operator_namespace,
            name=config.lease_name,
            # Unique per process: a restarted container must not mistake its predecessor's
            # lease for its own while that one may still be acting.
            identity=f"{config.identity}_{secrets.token_hex(4)}",
            timing=config.election_timing(),
        )
        kube.fence = elector.may_act
    ctx = Context(settings=config, kube=kube, queue=queue, elector=elector)
    queue.start()
    memo.ctx = ctx
    if elector is not None:
        elector.start()
    else:
        LEADER.set(1)
    if config.metrics_port:
        memo.metrics_server, _thread = start_http_server(config.metrics_port, registry=REGISTRY)
    logger.info(
        "Started modelwerk operator as %s%s",
        config.identity,
        f" (leader election on Lease {config.operator_namespace}/{config.lease_name})"
        if elector
        else "",
    )


@kopf.on.cleanup(id="cleanup")
async def cleanup(memo: Any, **_: Any) -> None:
    ctx: Context | None = getattr(memo, "ctx", None)
    if ctx is not None:
        if ctx.elector is not None:
            # Stops the reconciles first, then frees the Lease for a standby to take at once.
            await ctx.elector.stop()
        await ctx.queue.stop()
        await ctx.kube.close()
        await ctx.metrics.close()
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        server.shutdown()
        server.server_close()


@kopf.on.probe(id="queue")
def queue_probe(memo: Any, **_: Any) -> int:
    """Reported at /healthz, next to kopf's own liveness."""
    ctx: Context | None = getattr(memo, "ctx", None)
    return 0 if ctx is None else len(ctx.queue)


__all__ = ["Key", "cleanup", "login", "startup"]
