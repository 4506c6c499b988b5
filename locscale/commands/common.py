"""What the `locscale` subcommands share: how a subcommand module becomes a parser, the epilog, map arguments,
reading the density, the input checks and the JSON record."""

from __future__ import annotations

import argparse

from .. import CITATION
from ..errors import LocScaleInputError
from ..records import write_json as _write_record

EPILOG = f"Please cite: {CITATION}"


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default once: "(default: X)" is added only where the help text does not already say
    what the default is, and never for options without one (None) or for flags (False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def add_subcommand(subparsers, command) -> argparse.ArgumentParser:
    """Add the subcommand of module `command` (see :mod:`locscale.commands`) to an argparse subparsers object:
    help and description from its docstring, ``FORMATTER`` and ``EPILOG`` if it sets them; returns its parser."""
    help_text, _, description = command.__doc__.partition("\n\n")
    p = subparsers.add_parser(command.NAME, help=help_text.strip(), description=" ".join(description.split()),
                              epilog=getattr(command, "EPILOG", EPILOG),
                              formatter_class=getattr(command, "FORMATTER", argparse.HelpFormatter))
    command.add_arguments(p)
    return p


def add_map_args(p: argparse.ArgumentParser, resolution_required: bool = True) -> None:
    p.add_argument("map", help="cryo-EM map (MRC/CCP4), unsharpened and unfiltered for LocScale")
    p.add_argument("-r", "--resolution", type=float, required=resolution_required,
                   help="FSC-0.143 resolution of the map in Å")


def write_json(path: str | None, record: dict, a) -> None:
    if path:
        _write_record(path, record, warnings=getattr(a, "warnings", []))


def map_inputs(a) -> list[str]:
    return [p for p in ([getattr(a, "map", None)] + list(getattr(a, "half_maps", None) or [])) if p]


def read_density(a):
    """The map to work on (MAP, or the mean of --half-maps), checked for degenerate content."""
    from ..checks import check_map_content
    from ..mapio import average_half_maps, read_half_maps, read_map

    if a.half_maps and a.map:
        raise LocScaleInputError("both a map and --half-maps were given", "give either MAP or --half-maps")
    if a.half_maps:
        emap = average_half_maps(*read_half_maps(*a.half_maps))
    elif a.map:
        emap = read_map(a.map)
    else:
        raise LocScaleInputError("no map given", "give MAP or --half-maps HALF1 HALF2")
    check_map_content(emap.data, emap.path or "the mean of the half maps", "map")
    return emap


def check_inputs(emap, structure, resolution: float, min_inside: float = 0.9) -> float:
    """The checks `locscale check` runs (and `sharpen` with a model): a model, not a CA trace; model inside the
    box; model fits the map, and fits it best where it is. Returns the CC inside the model envelope."""
    from ..checks import check_model_atoms
    from ..models import check_model_in_map, model_path
    from ..simulate import check_model_fits_map

    check_model_atoms(structure, model_path(structure))
    check_model_in_map(structure, emap, min_inside)
    return check_model_fits_map(structure, emap, resolution)
