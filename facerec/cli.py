"""`facerec` console command. Parsers are built inside main(), never at import time.

Each subcommand lives in `facerec/commands/<name>.py` and exposes
`add_parser(subparsers)` (which sets `func`) so commands stay independent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from facerec.errors import FacerecError

COMMANDS = [
    "data",
    "lists",
    "split",
    "leakage",
    "evaluate",
    "score",
    "params",
    "train",
    "experiment",
    "report",
    "search",
    "embed",
    "verify",
    "identify",
    "export",
    "backend",
    "benchmark",
    "serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facerec", description="Face-recognition metric learning toolkit.")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="less output: -q only notes and errors (default: progress lines too)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output: debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"facerec.commands.{name}").add_parser(sub)
    return parser


def _message(exc: Exception) -> str:
    """The error's own words; an error re-raised from a DataLoader worker carries the worker's
    traceback in its text, of which the user needs only the last line."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose - args.quiet)
    _write_errors_as_errors()
    try:
        rc = args.func(args)
    except FacerecError as exc:
        if args.verbose and exc.__cause__ is not None:  # what the system (or torch) said first, for -v
            traceback.print_exception(exc)
        print(f"facerec {args.command}: error: {_message(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file a command reads or writes outside facerec's own checks: one line too
        if args.verbose:
            traceback.print_exception(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"facerec {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"facerec {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


def _write_errors_as_errors() -> None:
    """Under a file-size limit (`ulimit -f`) the kernel kills a process with SIGXFSZ, and a core dump,
    at the first write past it; ignored, the write fails with EFBIG like one to a full disk, and the
    command ends with its one-line error. A background writer's failure (TensorBoard's thread) would
    print a thread traceback: it is logged for -v, and the main thread reports it on its next write."""
    import logging
    import signal
    import threading

    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if getattr(threading.excepthook, "facerec_cli", False):
        return
    default = threading.excepthook

    def hook(info):
        if isinstance(info.exc_value, OSError):
            logging.getLogger("facerec").debug("%s: %s", getattr(info.thread, "name", "thread"), info.exc_value)
        else:
            default(info)
    hook.facerec_cli = True
    threading.excepthook = hook


def _configure_logging(verbosity: int) -> None:
    """Library modules log through `logging` (a user of the API can quiet them); the CLI shows
    progress (INFO) on stdout and notes (WARNING and up) on stderr; -q hides progress, -v adds DEBUG."""
    import logging

    class Console(logging.Handler):  # the streams of the moment, not the ones at the first call
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                print(f"note: {record.getMessage()}", file=sys.stderr)
            else:
                print(record.getMessage(), file=sys.stdout, flush=True)

    root = logging.getLogger("facerec")
    if not any(getattr(h, "facerec_cli", False) for h in root.handlers):
        handler = Console()
        handler.facerec_cli = True
        root.addHandler(handler)
        root.propagate = False
    root.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(max(-1, min(verbosity, 1)), logging.DEBUG))


if __name__ == "__main__":
    sys.exit(main())
