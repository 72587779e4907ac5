"""``modelwerk verify``: check that a model artifact exists and has the expected sha256 (and so
does its compiled form, when the ModelVersion records one).

Runs in the ModelVersion's verification Job, so the operator never reads the artifact store
itself. Exit codes: 0 verified; 1 missing or hash mismatch (a verdict: retrying cannot help);
3 bad arguments. The result JSON goes to stdout and the termination message.

With ``--mlflow-run-id`` the pod also tags that MLflow run with the ModelVersion
(``modelwerk.runtime.version_tags``); how that went is the result's ``tracking`` and never
changes the exit code.
"""

from __future__ import annotations

import argparse
import re

from modelwerk.runtime import storage, termination, version_tags

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 3
_UNREADABLE: tuple[type[Exception], ...] = (*storage.STORE_ERRORS, ValueError)


def verify(uri: str, expected: str) -> tuple[int, dict[str, object]]:
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        return EXIT_BAD_INPUT, {
            "ok": False,
            "reason": "BadInput",
            "error": "sha256 must be 64 lowercase hex digits",
        }
    try:
        if not storage.exists(uri):
            return EXIT_REFUSED, {
                "ok": False,
                "reason": "ArtifactMissing",
                "error": f"no artifact at {uri}",
            }
        actual = storage.sha256_of(uri)
    except _UNREADABLE as exc:
        return EXIT_REFUSED, {"ok": False, "reason": "ArtifactUnreadable", "error": f"{uri}: {exc}"}
    if actual != expected:
        return EXIT_REFUSED, {
            "ok": False,
            "reason": "HashMismatch",
            "error": f"sha256 of {uri} is {actual}, expected {expected}: the artifact was altered",
            "sha256": actual,
        }
    return EXIT_OK, {"ok": True, "sha256": actual}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="modelwerk verify", description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True, help="artifact URI (pvc://, s3://, file://, …)")
    parser.add_argument("--sha256", required=True, help="expected lowercase hex sha256")
    parser.add_argument("--compiled-uri", help="the compiled model.onnx, when there is one")
    parser.add_argument("--compiled-sha256", help="its expected lowercase hex sha256")
    parser.add_argument("--mlflow-tracking-uri", help="the tracking server of the run to tag")
    parser.add_argument("--mlflow-run-id", help="the MLflow run that produced this version")
    parser.add_argument("--model-version", help="the ModelVersion's name, tagged on the run")
    parser.add_argument("--model-version-number", type=int, help="its version number")
    args = parser.parse_args(argv)
    tagging = (args.mlflow_tracking_uri, args.mlflow_run_id, args.model_version)
    if any(tagging) and not (all(tagging) and args.model_version_number):
        parser.error(
            "--mlflow-tracking-uri, --mlflow-run-id, --model-version and "
            "--model-version-number go together"
        )
    code, result = verify(args.uri, args.sha256)
    if code == EXIT_OK and args.compiled_uri and args.compiled_sha256:
        code, compiled = verify(args.compiled_uri, args.compiled_sha256)
        if code != EXIT_OK:
            compiled["error"] = f"compiled model: {compiled['error']}"
            result = compiled
        else:
            result["compiledSha256"] = compiled["sha256"]
    if args.mlflow_run_id and code != EXIT_BAD_INPUT:
        # Tagged whatever the verdict: the run did become this version, usable or not.
        result["tracking"] = version_tags.tag_run(
            args.mlflow_tracking_uri,
            args.mlflow_run_id,
            args.model_version,
            args.model_version_number,
        )
    print(termination.write(result))
    return code
