"""Cycle 0 target: global B-factor sharpening (locscale.global_sharpen.global_sharpen) by the data's own blur (the
record of rule refine_unsharpened, locscale.global_sharpen.data_blur)."""

from _wf import read_json, resolution_of, run, write_json


def main(smk):
    from locscale.global_sharpen import global_sharpen
    from locscale.mapio import read_half_maps, read_map, write_map

    emap = read_map(smk.input.map)
    half = read_half_maps(smk.input.half1, smk.input.half2) if "half1" in smk.input.keys() else None
    blur = read_json(smk.input.data_blur)
    out, info = global_sharpen(emap, resolution_of(smk.input.info), bfactor=-blur["b_data"], half_maps=half)
    info["bfactor_source"] = "the data's own blur: 1st percentile of B refined against the unsharpened map"
    write_map(smk.output.map, out, label=f"global sharpening B={info['bfactor_applied']:.1f}")
    write_json(smk.output.info, info)
    print(info)


run(main)
