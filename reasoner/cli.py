"""The guideline-kg command line: thin, every command in its own module.

Exit codes: 0 success; 1 the input (patient or guideline encoding) does not conform;
2 the input or the command line is refused, with one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, Sequence

from reasoner import guard
from reasoner.errors import GuidelineError, InputError

# Each module has ``register(subparsers)``, which adds its commands and sets ``func``
# (a callable taking the parsed arguments and returning the exit code).
COMMAND_MODULES = (
    "reasoner.commands.recommend",
    "reasoner.commands.guideline",
    "reasoner.commands.serve",
    "reasoner.commands.store",
    "reasoner.commands.diagram",
    "reasoner.commands.spark",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as for refused input
        sys.stderr.write(f"guideline-kg: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="guideline-kg", description="A clinical guideline as a knowledge graph, applied to patients.")
    from reasoner import __version__

    parser.add_argument("--version", action="version", version=f"guideline-kg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a command module not written yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # rdflib logs its own warnings (e.g. about odd IRIs) to stderr; our errors are the one line the user sees.
    logging.getLogger("rdflib").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    hosts, paths = guard.policy_from_args(args)  # what the user named: the only hosts and files input may reach
    try:
        with guard.isolated(allow_hosts=hosts, allow_paths=paths):
            return func(args)
    except (InputError, GuidelineError, guard.IsolationError) as exc:
        sys.stderr.write(f"guideline-kg: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("guideline-kg: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except RecursionError:
        sys.stderr.write("guideline-kg: input nested too deeply\n")
        return 2
    except Exception as exc:  # never a traceback for a user; the message names the failure
        sys.stderr.write(f"guideline-kg: could not process the input: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}\n")
        return 2
