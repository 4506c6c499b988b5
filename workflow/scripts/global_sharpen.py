"""Cycle 0 target: global B-factor sharpening (locscale.global_sharpen.global_sharpen)."""

from _wf import resolution_of, run, write_json


def main(smk):
    from locscale.global_sharpen import global_sharpen
    from locscale.mapio import read_half_maps, read_map, write_map

    emap = read_map(smk.input.map)
    half = read_half_maps(smk.input.half1, smk.input.half2) if "half1" in smk.input.keys() else None
    out, info = global_sharpen(emap, resolution_of(smk.input.info), half_maps=half)
    write_map(smk.output.map, out, label=f"global sharpening B={info['bfactor_applied']:.1f}")
    write_json(smk.output.info, info)
    print(info)


run(main)
