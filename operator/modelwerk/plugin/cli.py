"""``kubectl modelwerk``: arguments, the commands, and how failures map to exit codes.

Exit codes: 0 done; 1 error (bad arguments, no kubeconfig, not found, forbidden, API server
unreachable); 2 the command was sent but the operator did not act on it in time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import urllib3
from kubernetes.client import ApiException

from modelwerk import __version__
from modelwerk.api.commands import Verb, command_value
from modelwerk.plugin.cluster import Cluster, ConfigError, Deleted, connect
from modelwerk.plugin.names import RESOURCE
from modelwerk.plugin.render_command import (
    render_acted,
    render_replaced,
    render_sent,
    render_timeout,
)
from modelwerk.plugin.render_runs import render_diff, render_runs
from modelwerk.plugin.render_status import render_status
from modelwerk.plugin.render_tables import render_history, render_list
from modelwerk.plugin.text import parse_duration

OK, ERROR, TIMED_OUT = 0, 1, 2
DEFAULT_TIMEOUT = 30.0

_CLEAR_SCREEN = "\x1b[H\x1b[2J"

Command = Callable[[Cluster, argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as kubectl's do; exit code 2 means "the operator did not act"."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ERROR, f"error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    _utf8_safe_output()
    args = _parser().parse_args(argv)
    if not hasattr(args, "run"):
        _parser().print_help()
        return OK
    try:
        cluster = connect(
            getattr(args, "kubeconfig", None),
            getattr(args, "context", None),
            getattr(args, "namespace", None),
        )
    except ConfigError as e:
        return _fail(f"error: {e}")
    try:
        run: Command = args.run
        return run(cluster, args)
    except ApiException as e:
        return _fail(_api_error(e, cluster))
    except urllib3.exceptions.HTTPError as e:
        return _fail(f"error: cannot reach the API server at {cluster.server}: {_root_cause(e)}")
    except Deleted as e:
        return _fail(f"error: {RESOURCE}/{e} was deleted")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (`| head`); point stdout at /dev/null so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    finally:
        cluster.close()


# -- commands ---------------------------------------------------------------------------------


def _status(cluster: Cluster, args: argparse.Namespace) -> int:
    obj = cluster.get(args.name)
    if not args.watch:
        sys.stdout.write(render_status(obj, _now()))
        return OK
    tty = sys.stdout.isatty()
    # Ages move with the clock; a change is judged on a fixed clock so only real changes redraw.
    started = _now()
    shown: str | None = None
    try:
        states = cluster.changes(args.name, obj)
        current: dict[str, Any] | None = obj
        while current is not None:
            fingerprint = render_status(current, started)
            if fingerprint != shown:
                now = _now()
                text = render_status(current, now)
                if tty:
                    text = f"{_CLEAR_SCREEN}{text}\nUpdated {now:%H:%M:%S} UTC; Ctrl-C to stop.\n"
                elif shown is not None:
                    text = "\n" + text
                sys.stdout.write(text)
                sys.stdout.flush()
                shown = fingerprint
            current = next(states, None)
    except Deleted:
        sys.stdout.write(f"{RESOURCE}/{args.name} was deleted\n")
    return OK


def _control(verb: Verb) -> Command:
    def run(cluster: Cluster, args: argparse.Namespace) -> int:
        name = args.name
        sent_verb: Verb = "promote-full" if verb == "promote" and args.full else verb
        before = cluster.get(name)
        sys.stderr.write(render_replaced(name, before))
        value = command_value(sent_verb, _now())
        after = cluster.send_command(name, value)
        sys.stdout.write(render_sent(name, value))
        sys.stdout.flush()
        if args.no_wait:
            return OK
        last: dict[str, Any] = after
        for state in cluster.changes(name, after, timeout=args.timeout):
            last = state
            if _acted_on(state, value):
                sys.stdout.write(render_acted(name, value, state))
                return OK
        sys.stderr.write(render_timeout(name, value, args.timeout, last))
        return TIMED_OUT

    return run


def _history(cluster: Cluster, args: argparse.Namespace) -> int:
    text = render_history(cluster.get(args.name))
    if text:
        sys.stdout.write(text)
    else:
        sys.stderr.write(f"No rollouts recorded for {RESOURCE}/{args.name}.\n")
    return OK


def _list(cluster: Cluster, args: argparse.Namespace) -> int:
    objs = cluster.list(all_namespaces=args.all_namespaces)
    text = render_list(objs, _now(), all_namespaces=args.all_namespaces)
    if text:
        sys.stdout.write(text)
    elif args.all_namespaces:
        sys.stderr.write("No modelwerk Deployments found.\n")
    else:
        sys.stderr.write(f"No modelwerk Deployments found in namespace {cluster.namespace}.\n")
    return OK


def _runs(cluster: Cluster, args: argparse.Namespace) -> int:
    text = render_runs(
        args.model,
        cluster.list(all_namespaces=False, plural="trainingjobs"),
        cluster.list(all_namespaces=False, plural="modelversions"),
    )
    if text:
        sys.stdout.write(text)
    else:
        sys.stderr.write(
            f"No runs or versions of model {args.model} in namespace {cluster.namespace}.\n"
        )
    return OK


def _diff(cluster: Cluster, args: argparse.Namespace) -> int:
    a = cluster.get(args.a, plural="modelversions")
    b = cluster.get(args.b, plural="modelversions")
    sys.stdout.write(render_diff(a, b))
    return OK


def _acted_on(obj: dict[str, Any], value: str) -> bool:
    return bool((obj.get("status") or {}).get("lastCommand") == value)


# -- arguments --------------------------------------------------------------------------------

_CONTROL_HELP: dict[Verb, str] = {
    "promote": "Finish the current step (canary) or switch now (blue-green).",
    "abort": "Abort the rollout in progress: all traffic back on the stable version.",
    "pause": "Pause the Deployment: nothing advances until resume.",
    "resume": "Resume after pause; also ends a pause step without a duration.",
    "retry": "Roll the aborted version out again from the first step.",
}

_EPILOG = """\
Commands are sent through the modelwerk.dev/command annotation; the spec is never changed.
Exit codes: 0 done, 1 error, 2 the operator did not act on the command within --timeout."""


def _parser() -> _Parser:
    # Connection flags are accepted before and after the command, as kubectl accepts them.
    # SUPPRESS keeps a flag given before the command from being reset by the subparser.
    common = _Parser(add_help=False)
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="Path to a kubeconfig.")
    common.add_argument("--context", default=argparse.SUPPRESS, help="The kubeconfig context.")
    common.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="Namespace (default: the context's namespace).",
    )
    parser = _Parser(
        prog="kubectl modelwerk",
        description="Watch and steer modelwerk Deployments (kind Deployment, modelwerk.dev); "
        "compare a model's runs and versions.",
        epilog=_EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubectl-modelwerk {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    status = sub.add_parser("status", parents=[common], help="Show a Deployment's rollout.")
    status.add_argument("name", metavar="NAME")
    status.add_argument(
        "-w", "--watch", action="store_true", help="Redraw whenever the Deployment changes."
    )
    status.set_defaults(run=_status)

    for verb, help_ in _CONTROL_HELP.items():
        command = sub.add_parser(verb, parents=[common], help=help_, description=help_)
        command.add_argument("name", metavar="NAME")
        if verb == "promote":
            command.add_argument(
                "--full",
                action="store_true",
                help="Skip all remaining steps and analysis and promote fully.",
            )
        command.add_argument(
            "--no-wait",
            action="store_true",
            help="Send the command and return without waiting for the operator.",
        )
        command.add_argument(
            "--timeout",
            type=_timeout,
            default=DEFAULT_TIMEOUT,
            help="How long to wait for the operator (30s, 2m; default 30s).",
        )
        command.set_defaults(run=_control(verb))

    history = sub.add_parser("history", parents=[common], help="List a Deployment's rollouts.")
    history.add_argument("name", metavar="NAME")
    history.set_defaults(run=_history)

    listing = sub.add_parser("list", parents=[common], help="List modelwerk Deployments.")
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="List them in every namespace."
    )
    listing.set_defaults(run=_list)

    runs = sub.add_parser(
        "runs",
        parents=[common],
        help="Compare a model's training runs and versions side by side.",
    )
    runs.add_argument("model", metavar="MODEL", help="the registered model (spec.model.name)")
    runs.set_defaults(run=_runs)

    diff = sub.add_parser(
        "diff", parents=[common], help="Show what differs between two ModelVersions."
    )
    diff.add_argument("a", metavar="VERSION_A")
    diff.add_argument("b", metavar="VERSION_B")
    diff.set_defaults(run=_diff)
    return parser


def _timeout(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the timeout must be positive (or use --no-wait)")
    return seconds


# -- output -----------------------------------------------------------------------------------


def _api_error(e: ApiException, cluster: Cluster) -> str:
    try:
        body: dict[str, Any] = json.loads(e.body) if e.body else {}
    except (TypeError, ValueError):
        body = {}
    reason = body.get("reason") or e.reason or f"HTTP {e.status}"
    message = body.get("message") or str(e.reason)
    if e.status == 404:
        if (body.get("details") or {}).get("name"):
            message += f' in namespace "{cluster.namespace}"'
        else:
            message = (
                f"the API server does not serve {RESOURCE}: are the modelwerk CRDs installed? "
                f"({message})"
            )
    return f"Error from server ({reason}): {message}"


def _root_cause(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return str(reason) if isinstance(reason, BaseException) else str(e)


def _fail(message: str) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return ERROR


def _now() -> datetime:
    return datetime.now(UTC)


def _utf8_safe_output() -> None:
    # The status view uses a few symbols (✔ ▶ ≤); on a non-UTF-8 terminal they degrade to "?".
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and "utf" not in (stream.encoding or "").lower():
            stream.reconfigure(errors="replace")
