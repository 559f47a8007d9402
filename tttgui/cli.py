"""Command line: `tttgui` opens the GUI; subcommands run headless."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from tttgui.errors import UserError

# Subcommand name -> module in tttgui.commands with add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "corrupt": "Write CIFAR-10-C style corrupted copies of a data set (release format).",
    "train": "Self-supervised pretraining and fine-tuning of a model.",
    "eval": "Error with and without test-time adaptation, per corruption and severity.",
    "stats": "Recompute a checkpoint's source statistics on images of its training data.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tttgui", description=__doc__)
    _add_window_options(parser)
    sub = parser.add_subparsers(dest="command")
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
    return parser


def _add_window_options(parser) -> None:
    """The window's options, so `tttgui --help` lists them (main() hands such a command line to the window)."""
    try:
        from tttgui.gui.app import build_parser as window_parser   # argparse only: no Qt is imported
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("tttgui.gui"):
            return
        raise
    group = parser.add_argument_group("window options (tttgui [options] opens the window)")
    for action in window_parser()._actions:   # the window's own, not copies that could drift from them
        if not isinstance(action, argparse._HelpAction):
            action.default = argparse.SUPPRESS    # for help only: a subcommand's namespace stays its own
            group._add_action(action)


def _command_module(name: str):
    try:
        return importlib.import_module(f"tttgui.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"tttgui.commands.{name}":
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("--") and argv[0] not in ("--help",):
        return _gui(argv)
    args = build_parser().parse_args(argv)
    if args.command is None:
        return _gui(argv)
    try:
        return int(_command_module(args.command).run(args) or 0)
    except UserError as exc:
        print(f"tttgui {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tttgui {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `tttgui eval ... | head`: the reader left; say nothing more to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _gui(argv: list[str]) -> int:
    try:
        from tttgui.gui.app import run_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("tttgui.gui"):
            print("tttgui: the desktop app is not built yet; use a subcommand (tttgui --help)", file=sys.stderr)
            return 2
        raise
    try:
        return run_app(argv)
    except UserError as exc:
        print(f"tttgui: error: {exc}", file=sys.stderr)
        return 2
