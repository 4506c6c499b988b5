"""The cycle's file names under ``results/<dataset>/``: the cycle folders, the summary's and final/'s files, and the
named inputs of the summary and final steps. The rules list these names (workflow/rules/common.smk) and the scripts
read them back with :func:`summary_cycle_files` and :func:`final_sources`, so each name is written once, here."""

from __future__ import annotations

from collections.abc import Mapping

from .table import TIMED_STEPS

#: the workflow's results folder (relative to the working directory)
RESULTS = "results"
#: the summary's plots in ``summary_upto_NN/`` (rule summary's outputs)
SUMMARY_PLOTS = ("metrics_vs_cycle.png", "fsc_curves.png", "radial_profiles.png", "bfactor_distributions.png",
                 "central_sections.png", "per_residue.png")
#: the files of every cycle (cycle 0 included) the summary reads: input key -> file in the cycle's folder
SUMMARY_EVERY_CYCLE = {"metrics": "metrics.json", "fsc": "fsc.tsv", "model": "model.cif",
                       "residues": "per_residue.tsv"}
#: ... and of the refined cycles (1, 2, ...), with the benchmark file of each of :data:`TIMED_STEPS`
SUMMARY_REFINED_CYCLES = {"refine": "refine.json", "sharpen": "sharpen.json", "locscale": "locscale.mrc",
                          "converged": "converged.json"}
#: the chosen cycle's files that final/ holds, under the same names
FINAL_FILES = ("locscale.mrc", "model.cif", "modelmap.mrc", "metrics.json")
#: ... and with the hybrid reference its pseudo-atoms and unexplained-density mask
HYBRID_FINAL_FILES = ("pseudo_atoms.cif", "unexplained_mask.mrc")


def cycle_dir(ds: str, cycle: int | str) -> str:
    """``results/<ds>/cycle_NN`` (cycle 0: the checked inputs)."""
    return f"{RESULTS}/{ds}/cycle_{int(cycle):02d}"


def summary_base(ds: str, last: int | str) -> str:
    """``results/<ds>/summary_upto_NN``: the table is this plus ``.tsv``, the plots and the selection lie in it."""
    return f"{RESULTS}/{ds}/summary_upto_{int(last):02d}"


def summary_targets(ds: str, last: int | str) -> list[str]:
    """Every file the summary of cycles 0 ... `last` writes."""
    base = summary_base(ds, last)
    return [f"{base}.tsv", *(f"{base}/{name}" for name in SUMMARY_PLOTS), f"{base}/selection.json"]


def final_dir(ds: str) -> str:
    return f"{RESULTS}/{ds}/final"


def _stem(name: str) -> str:
    return name.split(".")[0]


def _key(name: str, cycle: int) -> str:
    return f"{name}_{int(cycle):02d}"


def final_files(hybrid: bool) -> tuple[str, ...]:
    """The chosen cycle's files final/ holds (:data:`FINAL_FILES`, plus :data:`HYBRID_FINAL_FILES` with the hybrid
    reference)."""
    return FINAL_FILES + (HYBRID_FINAL_FILES if hybrid else ())


def final_outputs(ds: str, hybrid: bool) -> dict[str, str]:
    """final/'s files, named by their stem (``locscale``, ``model``, ...), and ``selection`` (which cycle, why)."""
    out = {_stem(name): f"{final_dir(ds)}/{name}" for name in final_files(hybrid)}
    out["selection"] = f"{final_dir(ds)}/selection.json"
    return out


def final_inputs(ds: str, last: int, hybrid: bool) -> dict[str, str]:
    """The named inputs of final/: the selection of the summary of cycles 0 ... `last` and every refined cycle's
    files of :func:`final_files` (the chosen one is known only once the summary ran)."""
    inputs = {"selection": f"{summary_base(ds, last)}/selection.json"}
    for c in range(1, int(last) + 1):
        for name in final_files(hybrid):
            inputs[_key(_stem(name), c)] = f"{cycle_dir(ds, c)}/{name}"
    return inputs


def final_sources(inputs: Mapping[str, str], cycle: int) -> dict[str, str]:
    """{output name of :func:`final_outputs`: cycle `cycle`'s file} from the named inputs of :func:`final_inputs`."""
    stems = [_stem(name) for name in FINAL_FILES + HYBRID_FINAL_FILES]
    return {stem: inputs[_key(stem, cycle)] for stem in stems if _key(stem, cycle) in inputs}


def summary_inputs(ds: str, last: int, *, crossval: bool, completion_records=()) -> dict[str, str]:
    """The named inputs of the summary of cycles 0 ... `last`: cycle 0's inputs record, map, global target and its
    record, and per cycle the files of :data:`SUMMARY_EVERY_CYCLE` (refined cycles also
    :data:`SUMMARY_REFINED_CYCLES`, the benchmarks of :data:`TIMED_STEPS` and, with `crossval`, crossval.json);
    the cycles in `completion_records` add the record of the model built after them (completion_coot.json)."""
    d0 = cycle_dir(ds, 0)
    inputs = {"inputs": f"{d0}/inputs.json", "map": f"{d0}/map.mrc", "global_map": f"{d0}/target.mrc",
              "global_info": f"{d0}/global_sharpen.json"}
    for c in range(0, int(last) + 1):
        files = dict(SUMMARY_EVERY_CYCLE)
        if c >= 1:
            files.update(SUMMARY_REFINED_CYCLES)
            files.update({f"bench_{step}": f"benchmarks/{step}.tsv" for step in TIMED_STEPS})
            if crossval:
                files["crossval"] = "crossval.json"
            if c in completion_records:
                files["completion"] = "completion_coot.json"
        inputs.update({_key(key, c): f"{cycle_dir(ds, c)}/{name}" for key, name in files.items()})
    return inputs


def summary_cycle_files(inputs: Mapping[str, str], cycle: int) -> dict:
    """Cycle `cycle`'s files among the named inputs of :func:`summary_inputs`: {key: path}, the benchmark files as
    ``benchmarks`` ({step: path})."""
    suffix = f"_{int(cycle):02d}"
    files = {key[:-len(suffix)]: path for key, path in inputs.items() if key.endswith(suffix)}
    benchmarks = {key[len("bench_"):]: files.pop(key) for key in list(files) if key.startswith("bench_")}
    if benchmarks:
        files["benchmarks"] = benchmarks
    return files
