"""What every handler shares, kept in kopf's memo: settings, the API client, the queue."""

from __future__ import annotations

from dataclasses import dataclass

from modelwerk.handlers.leader import LeaderElector
from modelwerk.handlers.workqueue import WorkQueue
from modelwerk.kube.client import Kube
from modelwerk.settings import OperatorSettings


@dataclass
class Context:
    settings: OperatorSettings
    kube: Kube
    queue: WorkQueue
    elector: LeaderElector | None = None
    """None when leader election is off: this replica always acts."""
