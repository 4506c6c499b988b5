"""A ChimeraX script per cycle: the LocScale map at the model's molecular volume, with the refined model."""

from _wf import run


def main(smk):
    from locscale.cycle.report import write_chimerax_script
    from locscale.mapio import read_map
    from locscale.models import contour_level, read_model

    emap, structure = read_map(smk.input.map), read_model(smk.input.model)
    level, volume = contour_level(emap, structure)
    write_chimerax_script(smk.output[0], smk.input.map, smk.input.model, level, style=smk.params.style,
                          title=f"{smk.wildcards.ds} cycle {smk.wildcards.cycle}: LocScale map + refined model",
                          enclosed_volume=volume)


run(main)
