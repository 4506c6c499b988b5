"""The `locscale` command line.

Every subcommand (one module of :mod:`locscale.commands` each) reads maps/models with the library, does one job
and writes its outputs atomically. Bad input ends with exit status 2 and a message naming the file, the problem
and the fix.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import COMMANDS
from .commands.common import EPILOG, add_subcommand
from .errors import LocScaleInputError
from .records import collect_warnings


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="locscale",
        description="Model-based local sharpening of cryo-EM maps (LocScale, Jakobi et al. 2017). "
        "Scales the map's amplitudes, in a window rolling over every voxel, to those of a map simulated from "
        "a refined atomic model; phases stay those of the experimental map.",
        epilog=EPILOG,
    )
    ap.add_argument("--version", action="version", version=f"locscale {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        add_subcommand(sub, command)
    return ap


RUN = {command.NAME: command.run for command in COMMANDS}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input, a value out of range, too little memory or an output that cannot be
    written ends with one message (problem, then the fix) and exit status 2, never a traceback; warnings about
    degenerate inputs are printed one line each and kept in the command's JSON record."""
    args = _parser().parse_args(argv)
    prog = f"locscale {args.command}"

    def echo(text):
        print(f"{prog}: warning: {text}", file=sys.stderr)

    try:
        with collect_warnings(echo) as caught:
            args.warnings = caught
            return RUN[args.command](args)
    except LocScaleInputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
    except MemoryError:
        print(f"{prog}: error: ran out of memory\n  fix: use a smaller window or crop the map around the model, "
              "or run on a machine with more memory", file=sys.stderr)
    except OSError as exc:  # e.g. a disk that fills up while writing
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}\n  fix: check the file and the folder it is in "
              "(space, permissions)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
