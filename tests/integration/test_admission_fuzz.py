"""Admission fuzzing on the real control plane: every hostile or odd object is refused with a
message naming the field, or accepted and handled by the operator without an error, a hot
loop or a half-created set of children (see ``tests/reliability/admission.py``).

``python -m tests.reliability.admission`` runs the same campaign and writes the report.
"""

from __future__ import annotations

import pytest

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.reliability.admission import Campaign, failures, prepare

PER_KIND = 200


@pytest.mark.timeout(900)
def test_hostile_objects_are_refused_naming_the_field_or_handled_without_errors(
    admin_rest: Rest, namespace: str, node: StandInNode, operator: InProcessOperator
) -> None:
    prepare(admin_rest, node, namespace)
    report = Campaign(
        admin_rest, namespace, operator.metrics_port, lambda: operator.logs, per_kind=PER_KIND
    ).run()
    for kind, figures in report["kinds"].items():
        assert figures["tried"] >= PER_KIND, (kind, figures["tried"])
        # Both outcomes occur for every kind, so neither check is vacuous.
        assert figures["rejectedAtAdmission"] > 0 and figures["accepted"] > 0, (kind, figures)
    broken = failures(report)
    assert not broken, "\n".join(broken[:60])
