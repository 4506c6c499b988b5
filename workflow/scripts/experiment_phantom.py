"""Experiments: build a SIMULATED phantom from a real model (locscale.phantoms.phantom)."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.models import read_model
    from locscale.phantoms.phantom import crop_model, make_phantom

    p = smk.params.phantom
    st = crop_model(read_model(smk.input.model), p.get("chains"), radius=p.get("radius"))
    ph = make_phantom(st, (int(p["box"]), float(p["apix"])), int(p["seed"]), resolution=float(p["resolution"]),
                      truth_b=p.get("truth_b"), truth_b_gradient=p.get("truth_b_gradient"),
                      b_core=float(p.get("b_core", 0.0)), b_periphery=float(p.get("b_periphery", 0.0)),
                      b_global=float(p["b_global"]), noise_b=float(p.get("noise_b", 50.0)),
                      chain_b=p.get("chain_b"), remove_fraction=float(p.get("remove_fraction", 0.0)),
                      remove_chains=p.get("remove_chains") or None, source=str(smk.input.model))
    paths = ph.write(Path(smk.output.json).parent)
    missing = [k for k in smk.output.keys() if Path(getattr(smk.output, k)) != paths[k]]
    if missing:
        raise RuntimeError(f"phantom files named differently than the rule expects: {missing}")
    print(ph.info["noise"])


run(main)
