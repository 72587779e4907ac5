"""Command lines of the pod programs: every flag has an environment twin in a settings class.

Flags are declared with ``default=None`` so that only the ones given override the environment
(pydantic-settings reads the rest); invalid values end the program with exit code 2 and every
problem named.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[tuple[str, dict[str, Any]]]) -> None:
    for flag, kwargs in flags:
        parser.add_argument(flag, default=None, **kwargs)


def settings_from(cls: type[S], args: argparse.Namespace, prog: str) -> S | None:
    """``cls`` from the flags given and the environment; None (after saying why on stderr)
    when a value is invalid."""
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        print(f"{prog}: invalid settings: {problems}", file=sys.stderr)
        return None


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
