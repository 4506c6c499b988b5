"""Cycle step 2: the refined model's map on the original map's grid (locscale.simulate.simulate_model_map)."""

from _wf import run


def main(smk):
    from locscale.mapio import read_map, write_map
    from locscale.models import read_model
    from locscale.simulate import simulate_model_map

    modelmap = simulate_model_map(read_model(smk.input.model), read_map(smk.input.map))
    write_map(smk.output.map, modelmap, label=f"model map, cycle {smk.wildcards.cycle}")


run(main)
