"""The Typer application and the one place where errors become exit codes.

Commands live in sibling modules that decorate :data:`app`. Every command is a
thin layer over the library API: it parses options, calls the library, prints.
"""

from __future__ import annotations

import logging
import os
import sys

import click
import typer
from rich.console import Console

from ..errors import MissingExtraError, PoisonguardError

__all__ = ["app", "console", "err_console", "main"]


def _classes(name: str) -> tuple[type[BaseException], ...]:
    """The exception class ``name`` from click and from Typer's vendored copy of click, if any."""
    found: list[type[BaseException]] = [getattr(click.exceptions, name)]
    try:
        from typer._click import exceptions as vendored  # typer >= 0.20 vendors click
    except ImportError:
        vendored = None
    if vendored is not None and hasattr(vendored, name):
        found.append(getattr(vendored, name))
    if hasattr(typer, name):
        found.append(getattr(typer, name))
    return tuple(dict.fromkeys(found))


_EXIT = _classes("Exit")
_ABORT = _classes("Abort")
_USAGE = _classes("ClickException")

app = typer.Typer(
    name="poisonguard",
    help="Defend ML pipelines against data poisoning: scan, sanitize, harden, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # errors stay on one line


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map every deliberate error to a one-line message and an exit code.

    Exit codes: 0 ok, 1 unexpected failure, 2 usage or input error, 3 a threshold or
    gate refused, 4 an integrity check failed, 5 a detector failed, 6 store error.
    """
    logging.basicConfig(level=logging.WARNING, format="poisonguard: %(levelname)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = app(args=args, prog_name="poisonguard", standalone_mode=False)
    except _EXIT as exc:
        code = int(getattr(exc, "exit_code", 0) or 0)
    except _ABORT:
        err_console.print("poisonguard: aborted")
        code = 130
    except _USAGE as exc:
        # usage errors: unknown option, missing argument, bad choice
        err_console.print(f"poisonguard: error: {exc.format_message()}", highlight=False, markup=False)
        code = getattr(exc, "exit_code", 2) or 2
    except PoisonguardError as exc:
        try:
            text = exc.render(_option_names(args))
        except Exception:  # the rendering of an error must never raise another one
            text = str(exc)
        err_console.print(f"poisonguard: error: {text}", highlight=False, markup=False)
        code = exc.exit_code
    except MissingExtraError as exc:
        err_console.print(f"poisonguard: error: {exc}", highlight=False, markup=False)
        code = exc.exit_code
    except KeyboardInterrupt:
        err_console.print("poisonguard: interrupted")
        code = 130
    except Exception as exc:  # an unexpected bug: one line, the traceback only on request
        if os.environ.get("POISONGUARD_DEBUG"):
            raise
        err_console.print(
            f"poisonguard: internal error: {type(exc).__name__}: {exc} (set POISONGUARD_DEBUG=1 for the traceback)",
            highlight=False, markup=False,
        )
        code = 1
    else:
        code = rv if isinstance(rv, int) else 0
    if argv is None:
        sys.exit(code)
    return code


def _option_names(args: list[str]) -> dict[str, str]:
    """Parameter name -> how the invoked command spells it (``top`` -> ``--top``, ``data`` -> ``DATA``).

    Library errors name parameters (``{top} must be >= 1``); the command the user typed
    is found by walking ``args`` down the command tree, and its options give the flags.
    """
    try:
        node = typer.main.get_command(app)
    except Exception:  # never let the rendering of an error raise another one
        return {}
    chain = [node]
    for tok in args:
        commands = getattr(node, "commands", None)
        if tok.startswith("-") or not commands:
            if not commands:
                break
            continue
        if tok not in commands:
            break
        node = commands[tok]
        chain.append(node)
    names: dict[str, str] = {}
    for cmd in chain:
        for param in getattr(cmd, "params", []):
            opts = list(getattr(param, "opts", []) or [])
            if not param.name:
                continue
            if param.param_type_name == "option":
                long = [o for o in opts if o.startswith("--")]
                names[param.name] = (long or opts or [param.name])[0]
            else:
                names[param.name] = param.name.upper()
    return names
