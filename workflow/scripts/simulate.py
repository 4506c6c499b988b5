"""Cycle step 2: the refined model's map on the original map's grid (locscale.simulate.simulate_model_map),
sharpened by the refine step's B raise (locscale.cycle.b_level.sharpen_model_map)."""

from _wf import read_json, run


def main(smk):
    from locscale.cycle.b_level import sharpen_model_map
    from locscale.mapio import read_map, write_map
    from locscale.models import read_model
    from locscale.simulate import simulate_model_map

    raise_b = float(read_json(smk.input.refine).get("b_model_raise") or 0.0)
    modelmap = sharpen_model_map(simulate_model_map(read_model(smk.input.model), read_map(smk.input.map)), raise_b)
    label = f"model map, cycle {smk.wildcards.cycle}" + (f", sharpened by {raise_b:.1f} A^2" if raise_b else "")
    write_map(smk.output.map, modelmap, label=label)


run(main)
