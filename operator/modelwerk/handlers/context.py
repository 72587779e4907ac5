"""What every handler shares, kept in kopf's memo: settings, the API client, the queue, the
index of who refers to whom."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelwerk.handlers.dependents import Dependents
from modelwerk.handlers.leader import LeaderElector
from modelwerk.handlers.workqueue import WorkQueue
from modelwerk.kube.client import Kube
from modelwerk.kube.scrape import MetricsReader
from modelwerk.settings import OperatorSettings


@dataclass
class Context:
    settings: OperatorSettings
    kube: Kube
    queue: WorkQueue
    metrics: MetricsReader = field(default_factory=MetricsReader)
    """Reads the serving pods' (or Prometheus') metrics for analysis and drift."""
    elector: LeaderElector | None = None
    """None when leader election is off: this replica always acts."""
    dependents: Dependents = field(default_factory=Dependents)
