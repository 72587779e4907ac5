"""``modelwerk verify``: check that a model artifact exists and has the expected sha256.

Runs in the ModelVersion's verification Job, so the operator never reads the artifact store
itself. Exit codes: 0 verified; 1 missing or hash mismatch (a verdict: retrying cannot help);
3 bad arguments. The result JSON goes to stdout and the termination message.
"""

from __future__ import annotations

import argparse
import re

from modelwerk.runtime import storage, termination

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 3


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
    except (storage.StorageError, OSError, ValueError) as exc:
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
    args = parser.parse_args(argv)
    code, result = verify(args.uri, args.sha256)
    print(termination.write(result))
    return code
