"""Experiments: one markdown file with every phantom's description and every table."""

import json
from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.common import markdown_table, read_table
    from locscale.outputs import atomic_output

    out = Path(smk.params.outdir)
    lines = ["# LocScale experiments on SIMULATED phantoms", "",
             "Regenerate: `snakemake -s workflow/experiments.smk --configfile config/experiments.yaml --cores 2`",
             ""]
    for ph in smk.params.phantoms:
        info = json.loads((out / ph / "phantom" / "SIMULATED_phantom.json").read_text())
        lines += [f"## phantom `{ph}`", "",
                  f"model {info['source_model']} chains {','.join(info['chains'])}, {info['n_atoms']} atoms; "
                  f"grid {info['grid']['shape']} at {info['grid']['voxel_size'][0]} Å; truth B "
                  f"{info['truth']['b_factors']} (mean {info['truth']['b_mean']:.1f}); blur ΔB "
                  f"{info['blur']['delta_b_min']:.0f}-{info['blur']['delta_b_max']:.0f} Å² "
                  f"({info['blur']['gradient']}) + global {info['blur']['b_global']:g} Å²; noise_b "
                  f"{info['noise']['noise_b']:g}; half-map FSC 0.143 at {info['noise']['measured_resolution']:.2f} Å "
                  f"(requested {info['noise']['requested_resolution']:g} Å); {info['removed']['n_residues']} "
                  f"residues removed from the model handed out; seed {info['seed']}.", ""]
        for name in smk.params.tables:
            path = out / ph / f"{name}.tsv"
            with open(path) as fh:
                first = fh.readline()
            meta = first[1:].strip() if first.startswith("#") else ""
            table = read_table(path)
            note = ""
            if len(table) > 30:  # per-residue / per-shell tables: every k-th row
                k = -(-len(table) // 15)
                table, note = table.iloc[::k], f" (every {k}th of {len(table)} rows; the TSV has all)"
            lines += [f"### {name}", "", f"`{path}`" + (f" -- settings: `{meta}`" if meta else "") + note, "",
                      markdown_table(table), ""]
    with atomic_output(smk.output[0], suffix=".md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


run(main)
