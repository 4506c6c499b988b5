"""Model completion by the user's own model-building command (``model_completion.mode: command``): the command
template with its placeholders filled (every value shell-quoted), run in its own folder, and the model it wrote
checked to lie inside the map."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import LocScaleInputError


def build_with_command(command: str, inputs: Mapping, output_model, *, resolution: float, workdir, log,
                       threads: int = 1) -> Path:
    """Run model-building `command` (placeholders: ``{map}``, ``{locscale_map}``, ``{model}``, ``{resolution}``,
    ``{output_cif}``, ``{output_pdb}``, ``{workdir}``, ``{threads}``) on `inputs` (``map``: the original map,
    ``locscale``: the cycle's LocScale map, ``model``: its model) in `workdir`, its output appended to `log`; the
    model it wrote (built.cif, else built.pdb) is checked against the LocScale map and written to `output_model`."""
    from ..mapio import read_map
    from ..models import check_model_in_map, read_model, write_model
    from ..tools.process import format_command, run_logged

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out_cif, out_pdb = workdir / "built.cif", workdir / "built.pdb"
    for stale in (out_cif, out_pdb):
        stale.unlink(missing_ok=True)
    fields = {"map": Path(inputs["map"]).resolve(), "locscale_map": Path(inputs["locscale"]).resolve(),
              "model": Path(inputs["model"]).resolve(), "resolution": f"{resolution:g}",
              "output_cif": out_cif.resolve(), "output_pdb": out_pdb.resolve(), "workdir": workdir.resolve(),
              "threads": threads}
    try:
        command = format_command(command, fields)  # every value shell-quoted
    except (KeyError, IndexError) as err:
        raise LocScaleInputError(f"model_completion.command uses an unknown placeholder {err}",
                                 f"use only {{{'}, {'.join(fields)}}} (see docs/model-completion.md)") from err
    run_logged(command, workdir, log, threads=threads, shell=True)
    built = out_cif if out_cif.exists() else out_pdb
    if not built.exists():
        raise LocScaleInputError(f"the model-building command finished but wrote neither {out_cif} nor {out_pdb}",
                                 "make the command write its model to {output_cif} or {output_pdb}", log)
    structure = read_model(built)
    check_model_in_map(structure, read_map(inputs["locscale"]))
    write_model(structure, output_model)
    return built
