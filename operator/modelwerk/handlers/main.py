"""``modelwerk run``: start the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from modelwerk.settings import OperatorSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelwerk run", description="Run the modelwerk operator."
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; globs allowed); default: all namespaces",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="log everything")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    namespaces = args.namespace or settings.namespaces
    kopf.configure(verbose=args.verbose, debug=args.debug, log_prefix=True)
    import modelwerk.handlers  # noqa: F401  (registers the handlers)

    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            standalone=True,
            # Without it kopf asks getpass for the user name, which a uid without a passwd
            # entry (the images run as 65532) does not have.
            identity=settings.identity,  # type: ignore[arg-type]  # kopf types it as a NewType of str
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
        )
    )
    return 0
