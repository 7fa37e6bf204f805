"""The command line: ``python -m bridge <command>``.

(A bare ``bridge`` on Linux is iproute2's network tool, so the package installs no console script of
that name.)
"""

from __future__ import annotations

import argparse
import sys

from bridge import model_commands
from bridge.errors import BridgeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in LIGHTNING_COMMANDS:  # listed for --help; main() hands them to LightningCLI
        commands.add_parser(name, help=f"LightningCLI {name}: --config configs/<file>.yaml, any key overridable")
    commands.add_parser("run", help="a recipe: a multi-stage job (python -m bridge run --help lists them)")

    model_commands.register(commands)
    from bridge.vla import commands as vla_commands

    vla_commands.register(commands)
    return parser


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def user_error(err: BaseException) -> BaseException | None:
    """The error that carries its own fix, shown as one line instead of a traceback; None for a bug.

    jsonargparse re-raises what a class raised while it was built (a ConfigError of a model or data module)
    as a ValueError ``from`` it, so the chain of causes is searched. Lightning is imported only when
    something went wrong.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    while err is not None:
        if isinstance(err, (BridgeError, MisconfigurationException)):
            return err
        err = err.__cause__
    return None


def resume_hint(argv: list[str]) -> str:
    """What to do after Ctrl-C outside a Trainer's loop (inside it, bridge.lit.callbacks.ResumeHint says)."""
    if argv and argv[0] == "fit":
        return "run the same command again (add --ckpt_path last if runs/<name>/checkpoints/last.ckpt exists)"
    if argv and argv[0] == "run":
        return "run the same command again to resume; finished stages are kept"
    return "nothing was saved; run the same command again"


def lightning(argv: list[str]) -> None:
    """Hand ``fit|validate|test|predict ...`` to LightningCLI."""
    from bridge.lit.lightning_cli import BridgeCLI

    BridgeCLI(args=None if argv == sys.argv[1:] else argv)  # args= as well as sys.argv: Lightning warns


def run_recipe(argv: list[str]) -> None:
    """``run <recipe> [options]``: the recipe parses its own options. Without a name, list the recipes."""
    from recipes import get_recipe, list_recipes

    if argv and not argv[0].startswith("-"):
        return get_recipe(argv[0])(argv[1:])
    listing = "\n".join(f"  {name:<16}{summary}" for name, summary in list_recipes().items())
    text = f"usage: python -m bridge run <recipe> [options]  (<recipe> --help: its options)\n\nrecipes:\n{listing}"
    if argv and argv[0] in ("-h", "--help"):
        print(text)
        return
    print(text, file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in LIGHTNING_COMMANDS:
            return lightning(argv)
        if argv and argv[0] == "run":
            return run_recipe(argv[1:])
        args = build_parser().parse_args(argv)
        args.func(args)
    except KeyboardInterrupt:  # the user asked: no traceback, and the shell's status for SIGINT
        print(f"interrupted (Ctrl-C): {resume_hint(argv)}", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:  # not SystemExit: --help and argparse's own errors pass, without importing Lightning
        cause = user_error(err)
        if cause is None:
            raise  # a bug: its traceback is the report
        raise SystemExit(f"error: {cause}") from None


if __name__ == "__main__":
    main()
