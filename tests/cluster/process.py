"""Child processes that never outlive the test session.

Owns: starting a command in its own process group with its output in a log
file, stopping the whole group (SIGTERM, then SIGKILL after a bounded wait),
and the safety nets that make leftovers impossible in practice:

* every live process is remembered and stopped by an ``atexit`` hook;
* SIGTERM/SIGHUP to the test runner become ``KeyboardInterrupt`` (see
  :func:`install_signal_handlers`), so pytest tears fixtures down as on Ctrl-C;
* with ``die_with_parent`` the kernel kills the child (PR_SET_PDEATHSIG) if the
  test runner itself is SIGKILLed and no Python code can run any more.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl  # looked up before fork: the child must not allocate


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


class ManagedProcess:
    """One command running in its own process group, logging to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            # PDEATHSIG is tied to the *thread* that forks: only use it from
            # threads that live as long as the process should (the main one).
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # own process group: killpg reaches grandchildren too
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        self.pid = self.popen.pid
        with _live_lock:
            _live.add(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; return the exit code."""
        try:
            if self.alive():
                signal_group(self.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout)
            # Also reap stragglers of the group whose leader already exited.
            signal_group(self.pid, signal.SIGKILL)
            return self.popen.wait(timeout)
        finally:
            with _live_lock:
                _live.discard(self)

    def tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines of the log, for error messages."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} alive={self.alive()}>"


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group; nothing if the group is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def pid_exists(pid: int) -> bool:
    """True while ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` runs; return those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if pid_exists(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def stop_all() -> None:
    """Stop every process still alive (the ``atexit`` safety net)."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        proc.stop(timeout=5)


atexit.register(stop_all)

_handlers_installed = False


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into ``KeyboardInterrupt`` so teardown code runs.

    Only from the main thread, and only where the default action (die without
    running any Python) is still in place -- never replaces someone's handler.
    """
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _interrupt)
    _handlers_installed = True


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def run_checked(argv: Sequence[str], *, input: str | None = None, timeout: float = 60) -> str:
    """Run a short command, return its stdout; raise with its output if it fails."""
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"`{' '.join(argv)}` timed out after {timeout}s") from e
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout
