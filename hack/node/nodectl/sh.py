"""Running host commands (ip, iptables, ctr, ...) with readable failures."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence


class CommandError(RuntimeError):
    """A host command failed; the message has the command and its output."""


def run(argv: Sequence[str], *, check: bool = True, input: bytes | None = None) -> str:
    """Run ``argv``; its stdout, or raise ``CommandError`` with its output when ``check``."""
    done = subprocess.run(list(argv), input=input, capture_output=True, timeout=120)
    if check and done.returncode != 0:
        raise CommandError(
            f"`{' '.join(argv)}` exited {done.returncode}: "
            f"{(done.stderr or done.stdout).decode(errors='replace').strip()}"
        )
    return done.stdout.decode(errors="replace")


def ok(argv: Sequence[str]) -> bool:
    """True when ``argv`` exits 0 (output discarded)."""
    return subprocess.run(list(argv), capture_output=True, timeout=120).returncode == 0


def have(command: str) -> bool:
    return shutil.which(command) is not None
