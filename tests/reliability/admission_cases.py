"""Hostile and edge-case objects of the four kinds, drawn by hypothesis.

Every case starts from a valid object (several shapes per kind, so that every optional part
of the schema is present in some of them) and changes one thing:

- *schema-driven* mutations walk the object together with the CRD schema the API server
  enforces and break one field: out-of-range and huge numbers, strings at and past their
  length limits (ASCII and multi-byte), values outside an enum, wrong JSON types, unknown
  fields, a required field removed;
- *hostile* mutations are written by hand: path traversal in URIs, invalid claim and Secret
  names, estimators outside the allowlist, both or neither of one-of fields, metric/task
  mismatches, names at the length limits, resource quantities the pod API refuses, node
  ports two Deployments both ask for, names that collide with objects the operator does not
  own.

A case says what it expects (refused, accepted, or either) and which field a refusal must
name, so the campaign can tell "refused with a useful message" from "refused for some other
reason" and "accepted although it is hostile".
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from hypothesis import strategies as st

from modelwerk import crdgen
from modelwerk.api.v1alpha1.estimators import ESTIMATORS

JSON = dict[str, Any]
Path = tuple[str | int, ...]
Expect = Literal["reject", "accept", "either"]

KINDS = ("Dataset", "TrainingJob", "ModelVersion", "Deployment")
PLURALS = {
    "Dataset": "datasets",
    "TrainingJob": "trainingjobs",
    "ModelVersion": "modelversions",
    "Deployment": "deployments",
}
NAME_SLOT = "@@@@@"
"""Replaced by a unique five-character prefix when a case is submitted (names must differ)."""

READY_DATASET = "fuzz-data"
"""A Dataset the campaign makes Ready first, so TrainingJobs get as far as their Job."""
READY_MODEL = "fuzz-model"
READY_VERSION = "fuzz-model-v1"
"""A ModelVersion the campaign makes Ready first, so Deployments get as far as their pods."""
SHA = "5f2b" * 16
DELETE = object()


@dataclass(frozen=True)
class Case:
    kind: str
    spec: JSON
    label: str
    """What was done, for example ``uri:traversal`` or ``schema:integer-above-maximum``."""
    field: str
    """The field a refusal must name, in the API server's notation (``spec.a.b[0].c``)."""
    expect: Expect
    name: str = NAME_SLOT + "-x"
    foreign: tuple[JSON, ...] = field(default=())
    """Objects not owned by the operator, created first under the case's name (collisions)."""

    def manifest(self, namespace: str, prefix: str) -> JSON:
        return {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": self.kind,
            "metadata": {"name": self.name.replace(NAME_SLOT, prefix), "namespace": namespace},
            "spec": self.spec,
        }


def render(path: Path) -> str:
    """``("spec", "steps", 0, "pause")`` → ``spec.steps[0].pause``, as the API server writes it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# --------------------------------------------------------------------------- valid shapes
def _dataset_bases() -> st.SearchStrategy[JSON]:
    source = st.one_of(
        st.fixed_dictionaries({"builtin": st.sampled_from(["iris", "wine", "digits"])}),
        st.fixed_dictionaries(
            {
                "uri": st.sampled_from(
                    [
                        "pvc://data/iris.csv",
                        "s3://bucket/key/train.parquet",
                        "https://example.com/d.csv",
                        "file:///data/x.csv",
                        "s3://b/o.csv",
                    ]
                ),
                "format": st.sampled_from(["auto", "csv", "parquet"]),
                "secretRef": st.just({"name": "s3-credentials"}),
            }
        ),
    )
    column = {
        "name": "sepal length (cm)",
        "type": "float",
        "nullable": True,
        "maxMissingFraction": 0.1,
        "min": 0,
        "max": 20,
        "allowedValues": ["1", "2"],
    }
    return st.fixed_dictionaries(
        {"source": source},
        optional={
            "target": st.just("target"),
            "schema": st.just({"columns": [column], "minRows": 10, "allowExtraColumns": False}),
            "refreshIntervalSeconds": st.sampled_from([60, 3600]),
            "resources": st.just(
                {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
            ),
            "activeDeadlineSeconds": st.sampled_from([10, 900, 86400]),
        },
    )


def _training_bases() -> st.SearchStrategy[JSON]:
    classification = [n for n, (_, task) in ESTIMATORS.items() if task == "classification"]
    return st.fixed_dictionaries(
        {
            "datasetRef": st.sampled_from([{"name": READY_DATASET}, {"name": "absent-data"}]),
            "model": st.just({"name": "fuzz-trained"}),
            "estimator": st.fixed_dictionaries(
                {"name": st.sampled_from(classification)},
                optional={"params": st.just({"random_state": 0})},
            ),
        },
        optional={
            "features": st.just(
                {
                    "drop": ["id"],
                    "oneHot": ["colour"],
                    "scaling": "standard",
                    "imputation": {"strategy": "constant", "fillValue": 0},
                }
            ),
            "split": st.just({"testSize": 0.25, "seed": 7, "stratify": True}),
            "search": st.just(
                {
                    "strategy": "random",
                    "space": {"C": [0.1, 1, None]},
                    "cv": 3,
                    "scoring": "f1",
                    "maxTrials": 5,
                }
            ),
            "gates": st.just([{"metric": "accuracy", "operator": ">=", "threshold": 0.5}]),
            "resources": st.just({"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi"}}),
            "activeDeadlineSeconds": st.sampled_from([10, 3600]),
            "backoffLimit": st.sampled_from([0, 10]),
            "ttlSecondsAfterFinished": st.sampled_from([0, 3600]),
        },
    )


def _model_version_bases() -> st.SearchStrategy[JSON]:
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(["fuzz-registered", READY_MODEL + "-other"]),
            "version": st.integers(1, 1000),
            "task": st.sampled_from(["classification", "regression"]),
            "artifact": st.just(
                {
                    "uri": f"pvc://modelwerk-artifacts/models/m/{SHA}/model.joblib",
                    "sha256": SHA,
                    "format": "joblib",
                    "framework": "scikit-learn",
                    "frameworkVersion": "1.5.2",
                }
            ),
        },
        optional={
            "signature": st.just(
                {
                    "inputs": [{"name": "a", "datatype": "FP64", "shape": [-1]}],
                    "outputs": [{"name": "predict", "datatype": "BYTES"}],
                    "classes": ["0", "1"],
                }
            ),
            "metrics": st.just({"accuracy": 0.9}),
            "params": st.just({"n_estimators": 10, "nested": {"deep": [1, "two", None]}}),
            "lineage": st.just(
                {
                    "dataset": "d",
                    "datasetVersion": "sha256:" + SHA,
                    "trainingJob": "t",
                    "trainingJobUid": "u",
                }
            ),
            "stage": st.sampled_from(["None", "Staging", "Production", "Archived"]),
        },
    )


def _deployment_bases() -> st.SearchStrategy[JSON]:
    target = st.one_of(
        st.just({"modelVersion": READY_VERSION}),
        st.just({"modelSelector": {"model": READY_MODEL, "stage": "None"}}),
        st.just({"modelVersion": "absent-v1"}),
    )
    strategy = st.one_of(
        st.just(
            {
                "canary": {
                    "steps": [
                        {"setWeight": 20},
                        {"pause": {"durationSeconds": 5}},
                        {"analysis": {"count": 2}},
                    ]
                }
            }
        ),
        st.just(
            {
                "blueGreen": {
                    "autoPromote": False,
                    "prePromotionAnalysis": True,
                    "scaleDownDelaySeconds": 0,
                    "previewReplicas": 1,
                }
            }
        ),
        st.just({}),
    )
    optional = {
        "replicas": st.sampled_from([0, 1]),
        "strategy": strategy,
        "analysis": st.just(
            {
                "intervalSeconds": 10,
                "count": 3,
                "failureLimit": 1,
                "inconclusiveLimit": 2,
                "minRequests": 5,
                "checks": [{"metric": "latency", "quantile": 0.9, "max": 0.2}],
                "prometheusUrl": "http://prometheus:9090",
            }
        ),
        "progressDeadlineSeconds": st.sampled_from([30, 600]),
        "monitoring": st.just(
            {
                "drift": {"method": "ks", "threshold": 0.3, "window": 100},
                "retraining": {"trainingJobRef": {"name": "t"}, "minIntervalSeconds": 60},
            }
        ),
        "trafficRouting": st.just({"httpRoute": {"name": "route"}}),
        "service": st.fixed_dictionaries(
            {"type": st.sampled_from(["ClusterIP", "NodePort"]), "port": st.just(8080)}
        ),
        "server": st.just(
            {
                "resources": {"limits": {"memory": "512Mi"}},
                "workers": 2,
                "maxBatchSize": 16,
                "maxBatchDelayMs": 1.5,
            }
        ),
        "historyLimit": st.sampled_from([1, 100]),
    }
    return st.tuples(target, st.fixed_dictionaries({}, optional=optional)).map(
        lambda pair: {**pair[0], **pair[1]}
    )


BASES = {
    "Dataset": _dataset_bases,
    "TrainingJob": _training_bases,
    "ModelVersion": _model_version_bases,
    "Deployment": _deployment_bases,
}


# --------------------------------------------------------------------------- schema-driven
@functools.cache
def spec_schema(kind: str) -> JSON:
    """The spec schema exactly as the CRD in ``crds/`` declares it."""
    crd = yaml.safe_load(crdgen.render()[f"{PLURALS[kind]}.modelwerk.dev.yaml"])
    schema: JSON = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _targets(node: Any, schema: JSON, path: Path) -> list[tuple[Path, JSON]]:
    """Every (path, schema) pair present in ``node``, the node itself included."""
    found = [(path, schema)]
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return found  # free-form: nothing below is checked
    if isinstance(node, dict) and "properties" in schema:
        for key, value in node.items():
            if key in schema["properties"]:
                found += _targets(value, schema["properties"][key], (*path, key))
    elif isinstance(node, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in node.items():
            found += _targets(value, schema["additionalProperties"], (*path, key))
    elif isinstance(node, list) and "items" in schema:
        for index, value in enumerate(node):
            found += _targets(value, schema["items"], (*path, index))
    return found


HOSTILE_STRINGS = [
    "",
    " ",
    "../../etc/passwd",
    "..",
    "a/b",
    "x?labelSelector=a",
    "\u202eevil",  # right-to-left override
    "zero\u200bwidth",
    "nul\u0000byte",
    "new\nline",
    "🦄" * 5,
    "\uff26\uff35\uff2c\uff2c"  # fullwidth FULL,
    "' OR 1=1 --",
    "${jndi:ldap://x}",
    "$(rm -rf /)",
]
HUGE_INTEGERS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 10**30]


def _string_mutations(schema: JSON) -> list[tuple[Any, Expect, str]]:
    out: list[tuple[Any, Expect, str]] = []
    if "enum" in schema:
        first = str(schema["enum"][0])
        out += [
            (first.upper() + "x", "reject", "enum-outsider"),
            (first + " ", "reject", "enum-trailing-space"),
        ]
    out += [(s, "either", "hostile-string") for s in HOSTILE_STRINGS]
    if "maxLength" in schema:
        limit = schema["maxLength"]
        out += [
            ("a" * limit, "either", "string-at-max-length"),
            ("a" * (limit + 1), "reject", "string-above-max-length"),
            ("é" * limit, "either", "multibyte-at-max-length"),
            ("🦄" * (limit + 1), "reject", "multibyte-above-max-length"),
        ]
    if schema.get("minLength"):
        out.append(("", "reject", "string-below-min-length"))
    out += [(12345, "reject", "wrong-type-number"), (["x"], "reject", "wrong-type-list")]
    return out


def _number_mutations(schema: JSON, integer: bool) -> list[tuple[Any, Expect, str]]:
    out: list[tuple[Any, Expect, str]] = []
    low, high = schema.get("minimum"), schema.get("maximum")
    step = 1 if integer else 1e-9
    if low is not None:
        out += [
            (low, "reject" if schema.get("exclusiveMinimum") else "either", "at-minimum"),
            (low - step, "reject", "below-minimum"),
        ]
    if high is not None:
        out += [
            (high, "reject" if schema.get("exclusiveMaximum") else "either", "at-maximum"),
            (high + step, "reject", "above-maximum"),
        ]
    for huge in HUGE_INTEGERS:
        within = (low is None or huge >= low) and (high is None or huge <= high)
        fits = -(2**63) <= huge < 2**63
        out.append((huge, "either" if within and fits else "reject", "huge-number"))
    if integer:
        out += [(1.5, "reject", "fraction-for-integer"), ("3", "reject", "string-for-integer")]
    else:
        out += [
            (1e308, "either" if high is None else "reject", "huge-float"),
            (5e-324, "either", "tiny-float"),
            ("0.5", "reject", "string-for-number"),
        ]
    return out


def _mutations(schema: JSON, required: bool) -> list[tuple[Any, Expect, str]]:
    kind = schema.get("type")
    out: list[tuple[Any, Expect, str]]
    if schema.get("x-kubernetes-int-or-string"):
        out = [
            ("lots", "reject", "invalid-quantity"),
            ("-1", "reject", "negative-quantity"),
            ("1e400", "either", "huge-quantity"),
            (1.5, "reject", "fraction-quantity"),
            ([], "reject", "wrong-type-list"),
        ]
    elif kind == "string":
        out = _string_mutations(schema)
    elif kind in ("integer", "number"):
        out = _number_mutations(schema, kind == "integer")
    elif kind == "boolean":
        out = [("true", "reject", "string-for-boolean"), (1, "reject", "number-for-boolean")]
    elif kind == "array":
        out = [({"a": 1}, "reject", "object-for-list"), ([], "either", "empty-list")]
        if "maxItems" in schema:
            item = _any_valid(schema["items"])
            out.append(([item] * (schema["maxItems"] + 1), "reject", "list-above-max-items"))
    elif kind == "object" or "properties" in schema:
        out = [("text", "reject", "string-for-object"), ([1], "reject", "list-for-object")]
        if "properties" in schema:
            out.append(({"notAField": 1}, "reject", "unknown-field"))
    else:
        out = []
    if required:
        out.append((DELETE, "reject", "required-removed"))
    elif schema.get("nullable"):
        out.append((None, "either", "null"))
    return out


def _any_valid(schema: JSON) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _any_valid(props[k]) for k in schema.get("required", [])}
    return {"string": "a", "integer": 1, "number": 1.0, "boolean": True, "array": []}.get(
        str(kind), "a"
    )


def _required(kind: str, path: Path) -> bool:
    if len(path) < 2 or isinstance(path[-1], int):
        return False
    schema = spec_schema(kind)
    for part in path[1:-1]:
        schema = schema["items"] if isinstance(part, int) else schema["properties"][part]
    return path[-1] in schema.get("required", [])


def _put(spec: JSON, path: Path, value: Any) -> JSON:
    """A copy of ``spec`` with ``path`` (below ``spec``) set to ``value`` or deleted."""
    out = copy.deepcopy(spec)
    node: Any = out
    for part in path[1:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


@st.composite
def schema_case(draw: st.DrawFn, kind: str) -> Case:
    spec = draw(BASES[kind]())
    targets = [
        (p, options)
        for p, s in _targets(spec, spec_schema(kind), ("spec",))
        if len(p) > 1 and (options := _mutations(s, _required(kind, p)))
    ]
    path, options = draw(st.sampled_from(targets))
    value, expect, what = draw(st.sampled_from(options))
    return Case(kind, _put(spec, path, value), f"schema:{what}", render(path), expect)


# --------------------------------------------------------------------------- hostile, by hand
TRAVERSAL_URIS = [
    "pvc://claim/../..",
    "pvc://claim/../../etc/passwd",
    "pvc://modelwerk-artifacts/models/../../../etc/shadow",
    "pvc://../etc/x.csv",
    "pvc://claim/a/..",
    "file:///../etc/passwd",
    "file:///data/../../etc/shadow",
    "s3://bucket/../../other-bucket/x.csv",
    "https://example.com/a/../../b.csv",
]
BAD_URIS = [
    "ftp://host/x.csv",
    "javascript:alert(1)",
    "/etc/passwd",
    "pvc:/claim/x.csv",
    "PVC://claim/x.csv",
    "pvc://claim/x y.csv",
    "",
]
BAD_CLAIM_URIS = [
    "pvc://UPPER/x.csv",
    "pvc://under_score/x.csv",
    "pvc:///x.csv",
    "pvc://-claim/x.csv",
    "pvc://claim",
    "pvc://" + "c" * 254 + "/x.csv",
]
BAD_OBJECT_NAMES = [
    "Bad_Name",
    "UPPER",
    "..",
    ".",
    "../../api/v1/namespaces/kube-system/secrets/x",
    "a/b",
    "x?watch=true",
    "-leading",
    "é",
    "n" * 254,
]
OUTSIDE_ALLOWLIST = [
    "os.system",
    "sklearn.svm.SVC",
    "svc",
    "RandomForestClassifier ",
    "RandomForestCl\u0430ssifier",  # a Cyrillic a
    "__import__",
    "subprocess.Popen",
    "",
    "Pipeline",
    "x" * 300,
]
BAD_QUANTITIES: list[Any] = ["lots", "-1", "1e400", "1.5.5", "", "12Q", [], {"a": 1}]
BAD_RESOURCE_KEYS = ["foo", "CPU", "", "requests.cpu", "nvidia.com/", "a b"]


def _case(kind: str, spec: JSON, label: str, field_: str, expect: Expect, **kw: Any) -> Case:
    return Case(kind, spec, label, field_, expect, **kw)


@st.composite
def _names(draw: st.DrawFn, kind: str) -> Case:
    spec = draw(BASES[kind]())
    length = draw(st.sampled_from([6, 62, 63, 64, 253, 254]))
    style = draw(st.sampled_from(["ascii", "dots", "unicode", "upper", "digit-first"]))
    tail = {"ascii": "a", "dots": "a.b", "unicode": "é", "upper": "A", "digit-first": "1"}[style]
    body = (tail * length)[: max(length - len(NAME_SLOT) - 1, 1)]
    name = f"{NAME_SLOT}-{body}" if style != "digit-first" else f"1{NAME_SLOT}{body}"[:length]
    if style == "dots" and body.endswith("."):
        name = name[:-1] + "b"
    # Every name is at most 63 characters (it is a label value on the children); a
    # Deployment's is a DNS label starting with a letter, as its Service's name must be.
    ok = length <= 63 and (
        style == "ascii" or (kind != "Deployment" and style in ("dots", "digit-first"))
    )
    return _case(
        kind,
        spec,
        f"name:{style}-{length}",
        "metadata.name",
        "either" if ok else "reject",
        name=name,
    )


@st.composite
def _dataset_hostile(draw: st.DrawFn, choice: str) -> Case:
    spec = draw(_dataset_bases())
    source = {k: v for k, v in spec["source"].items() if k != "builtin"}
    if choice == "traversal":
        uri = draw(st.sampled_from(TRAVERSAL_URIS))
        spec["source"] = {**source, "uri": uri}
        return _case("Dataset", spec, "uri:traversal", "spec.source", "reject")
    if choice == "bad-uri":
        spec["source"] = {**source, "uri": draw(st.sampled_from(BAD_URIS))}
        return _case("Dataset", spec, "uri:bad", "spec.source.uri", "reject")
    if choice == "claim":
        spec["source"] = {**source, "uri": draw(st.sampled_from(BAD_CLAIM_URIS))}
        return _case("Dataset", spec, "uri:bad-claim", "spec.source.uri", "reject")
    if choice == "both":
        spec["source"] = {"builtin": "iris", "uri": "pvc://data/x.csv"}
        return _case("Dataset", spec, "cel:both-sources", "spec.source", "reject")
    if choice == "neither":
        spec["source"] = {"format": "csv"}
        return _case("Dataset", spec, "cel:no-source", "spec.source", "reject")
    if choice == "secret":
        name = draw(st.sampled_from(BAD_OBJECT_NAMES))
        spec["source"] = {"uri": "s3://bucket/x.csv", "secretRef": {"name": name}}
        return _case("Dataset", spec, "ref:bad-secret-name", "spec.source.secretRef.name", "reject")
    if choice == "minmax":
        low, high = draw(st.sampled_from([(5, 1), (1e308, -1e308), (0.1, 0.0999)]))
        spec["schema"] = {"columns": [{"name": "a", "type": "float", "min": low, "max": high}]}
        return _case("Dataset", spec, "cel:min-above-max", "spec.schema.columns[0]", "reject")
    return _resources_case("Dataset", spec, ("spec", "resources"), choice, draw)


def _resources_case(kind: str, spec: JSON, path: Path, choice: str, draw: st.DrawFn) -> Case:
    if choice == "quantity":
        value = draw(st.sampled_from(BAD_QUANTITIES))
        part = draw(st.sampled_from(["requests", "limits"]))
        spec = _put(spec, path, {part: {"cpu": value}})
        return _case(kind, spec, "resources:bad-quantity", render((*path, part, "cpu")), "reject")
    if choice == "resource-key":
        key = draw(st.sampled_from(BAD_RESOURCE_KEYS))
        spec = _put(spec, path, {"requests": {key: "1"}})
        return _case(kind, spec, "resources:unknown-name", render((*path, "requests")), "reject")
    spec = _put(spec, path, {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}})
    return _case(kind, spec, "resources:request-above-limit", render(path), "reject")


@st.composite
def _training_hostile(draw: st.DrawFn, choice: str) -> Case:
    spec = draw(_training_bases())
    if choice == "allowlist":
        spec["estimator"] = {"name": draw(st.sampled_from(OUTSIDE_ALLOWLIST))}
        return _case(
            "TrainingJob", spec, "estimator:outside-allowlist", "spec.estimator.name", "reject"
        )
    if choice in ("metric", "scoring"):
        regression = draw(st.booleans())
        spec["estimator"] = {"name": "Ridge" if regression else "SVC"}
        wrong = "accuracy" if regression else "rmse"
        spec.pop("search", None)
        spec.pop("gates", None)
        if choice == "metric":
            spec["gates"] = [{"metric": wrong, "threshold": 0.5}]
            return _case("TrainingJob", spec, "cel:metric-task", "spec.gates", "reject")
        spec["search"] = {"strategy": "grid", "space": {"alpha": [1]}, "scoring": wrong}
        return _case("TrainingJob", spec, "cel:scoring-task", "spec.search.scoring", "reject")
    if choice == "dataset-ref":
        spec["datasetRef"] = {"name": draw(st.sampled_from(BAD_OBJECT_NAMES))}
        return _case("TrainingJob", spec, "ref:bad-dataset-name", "spec.datasetRef.name", "reject")
    if choice == "params":
        params = draw(_json_values(), label="params")
        spec["estimator"] = {**spec["estimator"], "params": {"p": params}}
        return _case("TrainingJob", spec, "estimator:odd-params", "spec.estimator.params", "either")
    if choice == "model-name":
        length = draw(st.sampled_from([53, 54, 63]))
        spec["model"] = {"name": "m" * length}
        # Versions are named <model>-v<N> and every name fits in 63 characters.
        return _case(
            "TrainingJob",
            spec,
            f"model:name-{length}",
            "spec.model.name",
            "either" if length <= 53 else "reject",
        )
    if choice == "ttl":
        spec["ttlSecondsAfterFinished"] = draw(st.sampled_from([2**31, 2**62]))
        return _case(
            "TrainingJob", spec, "ttl:above-int32", "spec.ttlSecondsAfterFinished", "reject"
        )
    return _resources_case("TrainingJob", spec, ("spec", "resources"), choice, draw)


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.sampled_from(HOSTILE_STRINGS),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    )


@st.composite
def _model_version_hostile(draw: st.DrawFn, choice: str) -> Case:
    spec = draw(_model_version_bases())
    artifact = dict(spec["artifact"])
    if choice == "traversal":
        spec["artifact"] = {**artifact, "uri": draw(st.sampled_from(TRAVERSAL_URIS))}
        return _case("ModelVersion", spec, "uri:traversal", "spec.artifact", "reject")
    if choice == "bad-uri":
        spec["artifact"] = {**artifact, "uri": draw(st.sampled_from(BAD_URIS))}
        return _case("ModelVersion", spec, "uri:bad", "spec.artifact.uri", "reject")
    if choice == "claim":
        spec["artifact"] = {**artifact, "uri": draw(st.sampled_from(BAD_CLAIM_URIS))}
        return _case("ModelVersion", spec, "uri:bad-claim", "spec.artifact.uri", "reject")
    if choice == "sha":
        sha = draw(st.sampled_from(["F" * 64, "0" * 63, "0" * 65, "g" * 64, "", "0" * 64 + "\n"]))
        spec["artifact"] = {**artifact, "sha256": sha}
        return _case("ModelVersion", spec, "artifact:bad-sha256", "spec.artifact.sha256", "reject")
    if choice == "version":
        value = draw(st.sampled_from([0, -1, 2**63, 1.5, "1"]))
        spec["version"] = value
        return _case("ModelVersion", spec, "version:invalid", "spec.version", "reject")
    spec["stage"] = draw(st.sampled_from(["production", "Deleted", "", "Production "]))
    return _case("ModelVersion", spec, "stage:outside-enum", "spec.stage", "reject")


@st.composite
def _deployment_hostile(draw: st.DrawFn, choice: str) -> Case:
    spec = draw(_deployment_bases())
    if choice == "both":
        spec.update(modelVersion=READY_VERSION, modelSelector={"model": READY_MODEL})
        return _case("Deployment", spec, "cel:both-targets", "spec", "reject")
    if choice == "neither":
        spec.pop("modelVersion", None)
        spec.pop("modelSelector", None)
        return _case("Deployment", spec, "cel:no-target", "spec", "reject")
    if choice == "step":
        step = draw(
            st.sampled_from(
                [
                    {},
                    {"setWeight": 10, "pause": {}},
                    {"setWeight": 5, "pause": {}, "analysis": {}},
                    {"pause": {}, "analysis": {}},
                ]
            )
        )
        spec["strategy"] = {"canary": {"steps": [{"setWeight": 10}, step]}}
        return _case(
            "Deployment", spec, "cel:canary-step-one-of", "spec.strategy.canary.steps[1]", "reject"
        )
    if choice == "strategies":
        spec["strategy"] = {"canary": {}, "blueGreen": {}}
        return _case("Deployment", spec, "cel:two-strategies", "spec.strategy", "reject")
    if choice == "check":
        spec["analysis"] = {"checks": [{"metric": "errorRate"}]}
        return _case("Deployment", spec, "cel:unbounded-check", "spec.analysis.checks[0]", "reject")
    if choice in ("node-port", "node-port-type"):
        spec.pop("modelSelector", None)
        spec["modelVersion"] = READY_VERSION
        port = draw(st.sampled_from([30080, 30081]))
        if choice == "node-port":
            # Several cases ask for the same port: one gets it, the others must say why not.
            spec["service"] = {"type": "NodePort", "nodePort": port}
            return _case("Deployment", spec, "service:shared-node-port", "", "accept")
        spec["service"] = {"type": "ClusterIP", "nodePort": port}
        return _case(
            "Deployment", spec, "service:node-port-on-cluster-ip", "spec.service", "either"
        )
    if choice == "foreign":
        spec.pop("modelSelector", None)
        spec["modelVersion"] = READY_VERSION
        foreign = {
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {"selector": {"app": "someone-else"}, "ports": [{"port": 1234}]},
        }
        return _case(
            "Deployment",
            spec,
            "name:taken-by-foreign-service",
            "",
            "accept",
            name=f"{NAME_SLOT}-victim",
            foreign=(foreign,),
        )
    if choice == "version-name":
        spec.pop("modelSelector", None)
        spec["modelVersion"] = draw(st.sampled_from(BAD_OBJECT_NAMES))
        return _case(
            "Deployment", spec, "ref:bad-model-version-name", "spec.modelVersion", "reject"
        )
    spec.pop("modelSelector", None)
    spec["modelVersion"] = READY_VERSION
    server = {"workers": 1}
    spec["server"] = server
    return _resources_case("Deployment", spec, ("spec", "server", "resources"), choice, draw)


HOSTILE = {
    "Dataset": _dataset_hostile,
    "TrainingJob": _training_hostile,
    "ModelVersion": _model_version_hostile,
    "Deployment": _deployment_hostile,
}
RESOURCES = ["quantity", "resource-key", "request-above-limit"]
CHOICES = {
    "Dataset": ["traversal", "bad-uri", "claim", "both", "neither", "secret", "minmax", *RESOURCES],
    "TrainingJob": [
        "allowlist",
        "metric",
        "scoring",
        "dataset-ref",
        "params",
        "model-name",
        "ttl",
        *RESOURCES,
    ],
    "ModelVersion": ["traversal", "bad-uri", "claim", "sha", "version", "stage"],
    "Deployment": [
        "both",
        "neither",
        "step",
        "strategies",
        "check",
        "node-port",
        "node-port-type",
        "foreign",
        "version-name",
        *RESOURCES,
    ],
}


@st.composite
def valid_case(draw: st.DrawFn, kind: str) -> Case:
    return Case(kind, draw(BASES[kind]()), "valid", "", "accept")


def families(kind: str) -> list[tuple[float, st.SearchStrategy[Case]]]:
    """The case families of ``kind`` with their share of a campaign: mostly broken fields,
    then every hand-written attack, names, and some plain valid objects."""
    hostile = CHOICES[kind]
    return [
        (0.45, schema_case(kind)),
        (0.12, _names(kind)),
        (0.08, valid_case(kind)),
        *((0.35 / len(hostile), HOSTILE[kind](choice)) for choice in hostile),
    ]


def is_finite_json(value: Any) -> bool:
    """Whether ``value`` can be sent as JSON at all (no NaN or infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(is_finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(is_finite_json(v) for v in value)
    return True
