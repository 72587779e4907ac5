"""Operator settings: leader election is off unless asked for, and its timing must be safe."""

import pytest
from pydantic import ValidationError

from modelwerk.logic.leader import ElectionTiming
from modelwerk.settings import OperatorSettings


def test_leader_election_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELWERK_LEADER_ELECTION", raising=False)
    settings = OperatorSettings()
    assert settings.leader_election is False  # a local `modelwerk run` acts at once
    assert settings.lease_name == "modelwerk-operator"  # the name the Role grants
    assert settings.election_timing() == ElectionTiming(15, 10.0, 2.0)


def test_leader_election_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWERK_LEADER_ELECTION", "true")
    monkeypatch.setenv("MODELWERK_LEASE_DURATION_SECONDS", "30")
    monkeypatch.setenv("MODELWERK_RENEW_DEADLINE_SECONDS", "20")
    settings = OperatorSettings()
    assert settings.leader_election is True
    assert settings.election_timing() == ElectionTiming(30, 20.0, 2.0)


def test_a_renew_deadline_past_the_lease_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWERK_RENEW_DEADLINE_SECONDS", "20")  # lease stays 15
    with pytest.raises(ValidationError, match="renew deadline < lease duration"):
        OperatorSettings()
