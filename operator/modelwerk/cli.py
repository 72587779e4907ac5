"""The ``modelwerk`` command: one entry point for the operator, the generator and the pods.

Each subcommand imports its module lazily, so the operator image never loads scikit-learn
and the runtime images never load kopf.
"""

from __future__ import annotations

import importlib
import sys

_COMMANDS = {
    "run": ("modelwerk.handlers.main", "Run the operator (kopf) with modelwerk's settings."),
    "crds": ("modelwerk.crdgen", "Generate crds/ from the API models (--check to detect drift)."),
    "data": (
        "modelwerk.runtime.data.cli",
        "Dataset tools: `data validate` (runs in the validation Job).",
    ),
    "train": ("modelwerk.runtime.trainer.cli", "Train a model (in the training Job, or --local)."),
    "byo": (
        "modelwerk.runtime.byo.cli",
        "Steps around a trainer image: `byo prepare|upload|evaluate` (in its Jobs).",
    ),
    "serve": ("modelwerk.runtime.server.cli", "Serve a model over the Open Inference Protocol."),
    "monitor": (
        "modelwerk.runtime.monitor.cli",
        "Join a Deployment's captured predictions with its labels (the live figures).",
    ),
    "verify": (
        "modelwerk.runtime.verify",
        "Check a model artifact's sha256 (the verification Job).",
    ),
}


def _usage() -> str:
    lines = ["usage: modelwerk <command> [options]", "", "commands:"]
    lines += [f"  {name:<6} {help_}" for name, (_, help_) in _COMMANDS.items()]
    lines += ["", "`modelwerk <command> --help` describes a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"--version", "version"}:
        from modelwerk import __version__

        print(__version__)
        return 0
    if args[0] not in _COMMANDS:
        print(f"modelwerk: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(_COMMANDS[args[0]][0])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
