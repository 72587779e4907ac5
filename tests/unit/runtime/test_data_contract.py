"""Every contract rule on small made-up csv files, and the validation result around them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelwerk.api.v1alpha1.dataset import DataContract, Violation
from modelwerk.runtime.data import contract, job, load

from .helpers import dataset, write_csv


def violations(
    tmp_path: Path, csv: str, schema: dict[str, Any] | None, target: str | None = None
) -> list[Violation]:
    frame = load.load_uri(write_csv(tmp_path, csv))
    rules = DataContract.model_validate(schema) if schema is not None else None
    return contract.check(frame, rules, target)


def brief(found: list[Violation]) -> list[tuple[str | None, str, int | None]]:
    return [(v.column, v.rule, v.count) for v in found]


def col(name: str = "a", type_: str = "integer", **rules: Any) -> dict[str, Any]:
    return {"columns": [{"name": name, "type": type_, **rules}]}


CASES: list[tuple[str, str, dict[str, Any] | None, str | None, list[Any]]] = [
    ("valid", "a,b\n1,x\n2,y\n", col(), None, []),
    ("missingColumn", "a,b\n1,2\n", col("c"), None, [("c", "missingColumn", None)]),
    (
        "extraColumn",
        "a,z,target\n1,2,0\n",
        {**col(), "allowExtraColumns": False},
        "target",
        [("z", "extraColumn", 1)],
    ),
    ("type integer", "a\n1\n2.5\nx\n", col(), None, [("a", "type", 2)]),
    ("type float", "a\n1.5\nabc\n2\n", col(type_="float"), None, [("a", "type", 1)]),
    ("type boolean", "a\ntrue\nno\nmaybe\n", col(type_="boolean"), None, [("a", "type", 1)]),
    ("type boolean numeric", "a\n0\n1\n2\n", col(type_="boolean"), None, [("a", "type", 1)]),
    ("type integer from bool", "a\ntrue\nfalse\n", col(), None, [("a", "type", 2)]),
    ("min", "a\n-1\n0\n5\n", col(min=0), None, [("a", "min", 1)]),
    ("max", "a\n-1\n0\n5\n9\n", col(max=4), None, [("a", "max", 2)]),
    (
        "min on numeric text",
        "a\n-3\nx\n",
        col(type_="float", min=0),
        None,
        [("a", "type", 1), ("a", "min", 1)],
    ),
    (
        "allowedValues",
        "a\nred\nblue\ngreen\ngreen\n",
        col(type_="category", allowedValues=["red", "blue"]),
        None,
        [("a", "allowedValues", 2)],
    ),
    ("nullable", "a,b\n1,x\n,y\n", col(), None, [("a", "nullable", 1)]),
    (
        "maxMissingFraction",
        "a,b\n1,x\n,x\n,x\n4,x\n",
        col(nullable=True, maxMissingFraction=0.25),
        None,
        [("a", "maxMissingFraction", 2)],
    ),
    (
        "missing fraction within bound",
        "a,b\n1,x\n,x\n3,x\n4,x\n",
        col(nullable=True, maxMissingFraction=0.25),
        None,
        [],
    ),
    ("minRows", "a\n1\n2\n3\n", {"minRows": 5}, None, [(None, "minRows", 3)]),
    ("empty data", "a,target\n", None, None, [(None, "minRows", 0)]),
    ("target absent", "a\n1\n", None, "label", [("label", "target", None)]),
    ("target with missing labels", "a,label\n1,x\n2,\n", None, "label", [("label", "target", 1)]),
    # csv carries no types: these read as float or int but meet the declared type.
    ("integer with a gap reads as float", "a,b\n1,x\n,x\n3,x\n", col(nullable=True), None, []),
    ("string accepts numbers", "a\n1\n2\n", col(type_="string"), None, []),
    (
        "allowedValues on integral floats",
        "a,b\n1,x\n,x\n2,x\n",
        col(nullable=True, allowedValues=["1", "2"]),
        None,
        [],
    ),
    (
        "allowedValues on booleans",
        "a\nTrue\nFalse\n",
        col(type_="boolean", allowedValues=["True"]),
        None,
        [("a", "allowedValues", 1)],
    ),
]


@pytest.mark.parametrize(
    ("case", "csv", "schema", "target", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_contract_rules(
    tmp_path: Path,
    case: str,
    csv: str,
    schema: dict[str, Any] | None,
    target: str | None,
    expected: list[Any],
) -> None:
    assert brief(violations(tmp_path, csv, schema, target)) == expected


def test_violations_say_what_was_observed(tmp_path: Path) -> None:
    found = violations(tmp_path, "a\n-1\n-7\n5\n", col(min=0, max=4))
    assert [(v.rule, v.observed) for v in found] == [("min", "-7"), ("max", "5")]
    assert "smallest -7" in found[0].message
    (bad,) = violations(tmp_path, "a\nred\nteal\n", col(type_="string", allowedValues=["red"]))
    assert bad.observed == "'teal'"


def test_inferred_schema_types_and_missing_counts(tmp_path: Path) -> None:
    frame = load.load_uri(write_csv(tmp_path, "i,f,s,b\n1,1.5,x,true\n2,,,false\n"))
    inferred = [(c.name, c.type, c.missing) for c in contract.infer_schema(frame)]
    assert inferred == [
        ("i", "integer", 0),
        ("f", "float", 1),
        ("s", "string", 1),
        ("b", "boolean", 0),
    ]


def test_result_of_valid_data_has_every_field(tmp_path: Path, root: str) -> None:
    uri = write_csv(tmp_path, "a,target\n1,0\n2,1\n3,0\n")
    outcome = job.validate(dataset(uri=uri, schema=col(min=0)), root)
    assert outcome.exit_code == job.EXIT_VERDICT
    result = outcome.result
    assert set(result) == {
        "valid",
        "version",
        "rows",
        "columns",
        "snapshotUri",
        "profileUri",
        "inferredSchema",
        "violations",
        "violationCount",
        "message",
    }
    assert result["valid"] is True
    assert (result["rows"], result["columns"]) == (3, 2)
    assert result["snapshotUri"].endswith(result["version"][7:] + "/snapshot.parquet")
    assert result["profileUri"].startswith("file://")
    assert result["inferredSchema"][0] == {"name": "a", "type": "integer", "missing": 0}
    assert result["violations"] == [] and result["violationCount"] == 0


def test_invalid_data_is_a_verdict_and_publishes_nothing(tmp_path: Path, root: str) -> None:
    uri = write_csv(tmp_path, "a,target\n-1,0\nx,1\n")
    outcome = job.validate(dataset(uri=uri, schema=col(min=0)), root)
    assert outcome.exit_code == job.EXIT_VERDICT
    assert outcome.result["valid"] is False
    assert outcome.result["snapshotUri"] is None and outcome.result["profileUri"] is None
    assert outcome.result["violationCount"] == 2
    assert outcome.result["violations"][0] == {
        "column": "a",
        "rule": "type",
        "observed": "string: 'x'",
        "count": 1,
        "message": "1 values of 'a' are not integer",
    }
    assert outcome.result["message"].startswith("2 contract violations")
    assert not Path(root).exists()
