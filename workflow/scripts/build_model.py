"""Model completion (command): run the configured model-building command, then check and store its model."""

from _wf import resolution_of, run


def main(smk):
    from pathlib import Path

    from locscale.errors import LocScaleInputError
    from locscale.mapio import read_map
    from locscale.models import check_model_in_map, read_model, write_model
    from locscale.tools.process import format_command, run_logged

    workdir = Path(smk.params.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out_cif, out_pdb = workdir / "built.cif", workdir / "built.pdb"
    for stale in (out_cif, out_pdb):
        stale.unlink(missing_ok=True)
    fields = {"map": Path(smk.input.map).resolve(), "locscale_map": Path(smk.input.locscale).resolve(),
              "model": Path(smk.input.model).resolve(), "resolution": f"{resolution_of(smk.input.info):g}",
              "output_cif": out_cif.resolve(), "output_pdb": out_pdb.resolve(), "workdir": workdir.resolve(),
              "threads": smk.threads}
    try:
        command = format_command(smk.params.command, fields)  # every value shell-quoted
    except (KeyError, IndexError) as err:
        raise LocScaleInputError(f"model_completion.command uses an unknown placeholder {err}",
                                 f"use only {{{'}, {'.join(fields)}}} (see docs/model-completion.md)") from err
    run_logged(command, workdir, smk.log[0], threads=smk.threads, shell=True)
    built = out_cif if out_cif.exists() else out_pdb
    if not built.exists():
        raise LocScaleInputError(f"the model-building command finished but wrote neither {out_cif} nor {out_pdb}",
                                 "make the command write its model to {output_cif} or {output_pdb}", smk.log[0])
    structure = read_model(built)
    check_model_in_map(structure, read_map(smk.input.locscale))
    write_model(structure, smk.output.model)


run(main)
