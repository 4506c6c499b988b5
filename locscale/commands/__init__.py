"""The `locscale` subcommands, one module each (the servalcat pattern).

Every module has ``NAME`` (the subcommand), ``add_arguments(parser)`` and ``run(args) -> exit status``; its
docstring is the subcommand's help (first line, as ``locscale --help`` lists it) and description (the rest),
and it may set ``FORMATTER`` (argparse formatter class) and ``EPILOG`` (default: the citation).
:data:`COMMANDS` lists them in the order ``locscale --help`` shows them; :mod:`locscale.cli` builds the parser
from it with :func:`locscale.commands.common.add_subcommand`.
"""

from . import check, global_sharpen, metrics, phantom, sharpen, simulate

COMMANDS = (sharpen, simulate, global_sharpen, metrics, check, phantom)
