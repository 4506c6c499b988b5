"""Model completion (command): run the configured model-building command (locscale.building.command)."""

from _wf import named, resolution_of, run


def main(smk):
    from locscale.building.command import build_with_command

    build_with_command(smk.params.command, named(smk.input), smk.output.model, resolution=resolution_of(
        smk.input.info), workdir=smk.params.workdir, log=smk.log[0], threads=smk.threads)


run(main)
