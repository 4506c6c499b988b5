"""Experiments: model completion -- CC to truth beyond an incomplete model, per cycle (optionally with servalcat
B refinement before each next cycle -- against the fixed cycle-0 global target (b_target: global, the workflow's
default) or against the cycle's LocScale map (locscale) -- and a surrogate builder that adds back what the
cycle's LocScale map shows)."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.bench import Bench, global_target, refinement_engine
    from locscale.experiments.common import write_table
    from locscale.experiments.model_completion import model_completion, plot_model_completion
    from locscale.global_sharpen import global_sharpen
    from locscale.mapio import write_map
    from locscale.models import read_model, write_model
    from locscale.phantoms.truth import global_b_scan

    s, cfg = smk.params.settings, smk.params.refine
    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window, mode=smk.params.mode)
    partial = read_model(smk.input.model)
    if smk.params.reference == "refined":  # the refined B of the residues the partial model keeps
        refined = {(ch.name, r.seqid.num): r for ch in read_model(smk.input.refined)[0] for r in ch}
        for ch in partial[0]:
            for r in ch:
                for a, b in zip(r, refined[(ch.name, r.seqid.num)], strict=True):
                    a.b_iso = b.b_iso
    workdir = Path(smk.params.workdir)
    engine = refinement_engine(cfg)

    b_target = s["b_target"]
    fixed, _ = global_target(bench.half1, bench.half2, bench.resolution)

    def refine(model, locscale_map, cycle):
        d = workdir / f"cycle_{cycle:02d}"
        d.mkdir(parents=True, exist_ok=True)
        target = fixed if b_target == "global" else locscale_map
        write_map(d / "SIMULATED_locscale_target.mrc", target, label=f"SIMULATED phantom {b_target} target")
        write_model(model, d / "model_in.pdb")
        result = engine.run(d / "model_in.pdb", bench.resolution, d / "servalcat",
                            target_map=d / "SIMULATED_locscale_target.mrc", threads=smk.threads)
        print(f"cycle {cycle}: {result.record()}")
        return read_model(result.model)

    scan = global_b_scan(bench.full, bench.truth, bench.resolution, bench.eval_mask)
    b_best = float(scan.loc[scan["cc_mask_truth"].idxmax(), "bfactor_applied"])
    baseline, _ = global_sharpen(bench.full, bench.resolution, bfactor=b_best)
    table = model_completion(bench, partial, cycles=int(s["cycles"]), build_cc=s.get("build_cc"),
                             refine=refine if s.get("refine") else None, baseline=baseline)
    write_table(table, smk.output.table, {"phantom": smk.wildcards.ph, "mode": bench.mode,
                                          "window_voxels": bench.window, "refine": bool(s.get("refine")),
                                          "b_target": b_target,
                                          "build_cc": s.get("build_cc"), "baseline_global_b": b_best})
    plot_model_completion(table, smk.output.plot, title=f"model completion, SIMULATED phantom {smk.wildcards.ph}")
    print(table.to_string())


run(main)
