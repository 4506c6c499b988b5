# Input functions, dataset handling, the download check, the refinement-engine check and the loop walk (the
# loop: docs/workflow.md "How the loop is built"). Only functions and constants live here; the rules are in the
# other .smk files.

import json
import os
import shlex
import sys
import urllib.parse
from pathlib import Path

from snakemake.exceptions import IncompleteCheckpointException, WorkflowError

from locscale.cycle import files
from locscale.cycle.b_level import level_is_held
from locscale.cycle.convergence import read_decision, walk_cycles
from locscale.download import (
    emdb_half_map_urls,
    emdb_half_maps_missing,
    emdb_map_url,
    emdb_number,
    offline_report,
    pdb_model_url,
)
from locscale.errors import LocScaleInputError
from locscale.engines import make_engine

ENVS = Path(workflow.basedir) / "envs"
DATASETS = list(config["datasets"])
MAX_CYCLES = int(config["max_cycles"])
COMPLETION = config["model_completion"]
# the hybrid reference (model + pseudo-atoms in the density it does not explain): sharpen.hybrid, or by default
# whenever the model is being completed (README, "Hybrid reference")
HYBRID = COMPLETION["mode"] != "none" if config["sharpen"]["hybrid"] is None else bool(config["sharpen"]["hybrid"])
DOWNLOADS = {}  # (dataset, file name) -> {"urls": [...], "sha256": ...}
DOWNLOAD_NOTES = []  # lines for the offline message (e.g. what happens if an archive lacks the half maps)
WALKS = {}  # dataset -> locscale.cycle.convergence.Walk (filled by all_input, read by print_run_summary)
RUN_STARTED = workflow.start_time.timestamp()  # logs written since belong to this run (print_run_summary)


wildcard_constraints:
    ds=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    cycle=r"(0[1-9]|[1-9][0-9])",  # cycles 01-99; cycle_00 (inputs) has its own rules
    last=r"[0-9][0-9]",
    filename=r"[^/]+",


def _fail(problem, fix):
    raise WorkflowError(f"config: {problem}\n  fix: {fix}")


# ---------------------------------------------------------------------------------------------- datasets
def _mirror_urls(fn, acc, which=None):
    urls = []
    for mirror in config["download"]["emdb_mirrors"]:
        u = fn(acc, mirror)
        urls.append(u if which is None else u[which])
    return urls


def _download(name, url_or_urls, sha256):
    """Register a download into resources/<dataset>/ and return its path (name from the URL, without .gz)."""
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    fname = Path(urllib.parse.urlparse(urls[0]).path).name
    fname = fname[:-3] if fname.endswith(".gz") else fname
    if (name, fname) in DOWNLOADS and DOWNLOADS[(name, fname)]["urls"] != urls:
        _fail(f"dataset {name!r}: two downloads would both be saved as {fname}",
              "use URLs whose file names differ")
    DOWNLOADS[(name, fname)] = {"urls": urls, "sha256": sha256}
    return f"resources/{name}/{fname}"


def _dataset_files(name):
    """Input paths of a dataset (downloaded ones under resources/<dataset>/), checked for consistency."""
    d = config["datasets"][name]
    sha = d.get("sha256") or {}  # optional sections without defaults
    urls = d.get("urls") or {}
    files = {}
    sources = [k for k in ("map", "half_maps", "emdb") if d.get(k)]
    sources += [f"urls.{k}" for k in ("map", "half_map_1") if urls.get(k)]
    if len(sources) != 1:
        _fail(f"dataset {name!r} gives {' and '.join(sources) or 'no map'}",
              "give exactly one of map (full map), half_maps ([half1, half2]), emdb (an EMDB accession), "
              "urls.map or urls.half_map_1 + urls.half_map_2")
    if bool(urls.get("half_map_1")) != bool(urls.get("half_map_2")):
        _fail(f"dataset {name!r} gives only one of urls.half_map_1 / urls.half_map_2", "give both half maps")
    if d.get("emdb"):
        try:
            n = emdb_number(d["emdb"])
        except LocScaleInputError as err:
            _fail(f"dataset {name!r}: {err.problem}", err.fix)
        half_urls = [_mirror_urls(emdb_half_map_urls, n, i) for i in (0, 1)]
        # half maps asked for but not in the archive: the primary map, with a warning (decided once, then kept in
        # resources/<dataset>/, so cluster jobs and offline re-runs decide the same)
        lacking = d["use_half_maps"] and emdb_half_maps_missing(
            n, half_urls[0], f"resources/{name}", probe=workflow.is_main_process)
        if lacking and workflow.is_main_process:
            print(f"WARNING: dataset {name!r}: {lacking}", file=sys.stderr)
        if d["use_half_maps"] and not lacking:
            files["half_maps"] = [_download(name, half_urls[i], sha.get(f"half_map_{i + 1}")) for i in (0, 1)]
            DOWNLOAD_NOTES.append(f"(if EMDB has no half maps for EMD-{n}, the download fetches its primary map "
                                  f"emd_{n}.map instead)")
        else:
            files["map"] = _download(name, _mirror_urls(emdb_map_url, n), sha.get("map"))
    elif urls.get("map"):
        files["map"] = _download(name, urls["map"], sha.get("map"))
    elif urls.get("half_map_1"):
        files["half_maps"] = [_download(name, urls[f"half_map_{i}"], sha.get(f"half_map_{i}")) for i in (1, 2)]
    elif d.get("half_maps"):
        files["half_maps"] = [str(p) for p in d["half_maps"]]
    else:
        files["map"] = str(d["map"])
    models = [k for k in ("model", "pdb") if d.get(k)] + (["urls.model"] if urls.get("model") else [])
    if len(models) != 1:
        _fail(f"dataset {name!r} gives {' and '.join(models) or 'no model'}",
              "give exactly one of model (a PDB/mmCIF file), pdb (a PDB ID to download) or urls.model")
    if d.get("pdb"):
        try:
            url = pdb_model_url(d["pdb"], "cif")
        except LocScaleInputError as err:
            _fail(f"dataset {name!r}: {err.problem}", err.fix)
        files["model"] = _download(name, url, sha.get("model"))
    elif urls.get("model"):
        files["model"] = _download(name, urls["model"], sha.get("model"))
    else:
        files["model"] = str(d["model"])
    if d.get("resolution") is None and "half_maps" not in files:
        _fail(f"dataset {name!r} has a full map but no resolution",
              "give resolution (the map's FSC-0.143 resolution in Å), or half maps to compute it from")
    if d.get("mask"):
        files["mask"] = str(d["mask"])
    return files


FILES = {name: _dataset_files(name) for name in DATASETS}


def download_targets():
    """Every file the datasets name by accession or URL: the target `download` (fetch only, for a login node)."""
    return [f"resources/{ds}/{fname}" for ds, fname in DOWNLOADS]


def fetch_command():
    """The command that fetches this run's downloads (the config files as given on the command line)."""
    parts = ["snakemake", "--cores", "1"]
    if workflow.overwrite_configfiles:
        parts += ["--configfile", *(os.path.relpath(p) for p in workflow.overwrite_configfiles)]
    return shlex.join(parts + ["download"])


def check_downloads():
    """Before any job: when files still have to be downloaded and none of their hosts can be reached (offline,
    e.g. a compute node), stop at once with one message naming every missing file and the fetch-only command."""
    missing = {path: DOWNLOADS[key]["urls"] for key, path in zip(DOWNLOADS, download_targets())
               if not Path(path).exists()}
    message = offline_report(missing, fetch_command(), DOWNLOAD_NOTES)
    if message:
        print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(1)  # before any job (nothing to clean up), and without a traceback around the message


def has_half_maps(ds):
    return "half_maps" in FILES[ds]


def crossval_enabled(ds):
    return has_half_maps(ds) and config["cross_validation"]["enabled"]


def prepare_input(wildcards):
    f = FILES[wildcards.ds]
    out = {"model": f["model"]}
    if "half_maps" in f:
        out["half1"], out["half2"] = f["half_maps"]
    else:
        out["map"] = f["map"]
    if "mask" in f:
        out["mask"] = f["mask"]
    return out


def half_maps_input(wildcards):
    f = FILES[wildcards.ds]
    return {"half1": f["half_maps"][0], "half2": f["half_maps"][1]} if "half_maps" in f else {}


def mask_input(wildcards):
    f = FILES[wildcards.ds]
    return {"mask": f["mask"]} if "mask" in f else {}


def truth_input(wildcards):
    """Phantoms: the truth map and the true model (its envelope is where maps are scored), when configured."""
    d = config["datasets"][wildcards.ds]
    if not d.get("truth"):
        if d.get("truth_model"):
            _fail(f"dataset {wildcards.ds!r} gives truth_model but no truth map", "give truth (the truth map) too")
        return {}
    return {"truth": str(d["truth"]), "truth_model": str(d.get("truth_model") or FILES[wildcards.ds]["model"]),
            "start_model": f"{cdir(wildcards.ds, 0)}/model.cif"}


def dataset_params(wildcards):
    """The dataset's settings that change cycle 0 (so editing them re-runs it)."""
    d = config["datasets"][wildcards.ds]
    return {k: d.get(k) for k in ("resolution", "model_shift", "initial_b", "min_model_inside")}


# ---------------------------------------------------------------------------------------------- paths
cdir = files.cycle_dir


def completion_after(cycle):
    """True when a rebuilt model replaces cycle `cycle`'s refined model before the next cycle."""
    if COMPLETION["mode"] == "none" or int(cycle) < 1:
        return False
    after = COMPLETION["after_cycles"]
    return after is None or int(cycle) in [int(c) for c in after]


def completed_model(ds, cycle):
    """The rebuilt model that enters cycle `cycle` + 1 (model completion)."""
    if COMPLETION["mode"] in ("command", "coot"):
        return f"{cdir(ds, cycle)}/built_model.cif"
    status = json.loads(Path(checkpoints.await_model.get(ds=ds, cycle=f"{int(cycle):02d}").output[0]).read_text())
    if status["status"] != "ready":
        raise WorkflowError(f"cycle {cycle} of {ds} is still waiting for a rebuilt model: {status['message']}")
    return status["model"]


def hybrid_input(wildcards):
    """The pseudo-atoms of cycle c (and their record) for its LocScale step, when the hybrid reference is on."""
    if not HYBRID:
        return {}
    d = cdir(wildcards.ds, wildcards.cycle)
    return {"pseudo_atoms": f"{d}/pseudo_atoms.cif", "pseudo_info": f"{d}/pseudo_atoms.json"}


def pseudo_atom_b_target(wildcards):
    """With sharpen.pseudo_atom_b: refined, the map the pseudo-atoms' B are refined against: the cycle-0 global
    target (the default B target of the model, so pseudo-atoms and model share one B level)."""
    if config["sharpen"]["pseudo_atom_b"] != "refined":
        return {}
    return {"target": f"{cdir(wildcards.ds, 0)}/target.mrc"}


def refine_model(wildcards):
    """The model refined in cycle c: cycle c-1's refined (or rebuilt) model; the checked input for c = 1."""
    c = int(wildcards.cycle)
    if c > 1 and completion_after(c - 1):
        return completed_model(wildcards.ds, c - 1)
    return f"{cdir(wildcards.ds, c - 1)}/model.cif"


B_TARGET = config["refine"]["b_target"]


def _locscale_target(wildcards):
    """The paper's target of cycle c: the global-sharpened map for c = 1, cycle c-1's LocScale map after."""
    c = int(wildcards.cycle)
    if c == 1:
        return f"{cdir(wildcards.ds, 0)}/target.mrc"
    return f"{cdir(wildcards.ds, c - 1)}/locscale.mrc"


def first_cycle_record(wildcards):
    """refine.b_level fixed: cycles after the first read cycle 1's refine record, whose reference B level they
    keep (locscale.cycle.b_level)."""
    if int(wildcards.cycle) > 1 and config["refine"]["b_level"] == "fixed":
        return {"first_cycle": f"{cdir(wildcards.ds, 1)}/refine.json"}
    return {}


def refine_targets(wildcards):
    """Maps the refine step of cycle c reads (README "Which map the B-factors are refined against"):

    * ``target``: B-factors (refine.b_target): the fixed cycle-0 global target (global, default), or the previous
      LocScale map (locscale; locscale_signal divides it by the half-map FSC weight first, with ``half1/2``);
    * ``xyz_target``: with refine.refine_xyz and b_target global, coordinates are refined against the previous
      LocScale map (the cycle-0 target in cycle 1) in a step of their own;
    * ``data_blur``: b_target global, cycle 1: the B level (the unsharpened refinement less the data's blur).
    """
    out = {"target": f"{cdir(wildcards.ds, 0)}/target.mrc" if B_TARGET == "global" else _locscale_target(wildcards)}
    if B_TARGET == "global" and int(wildcards.cycle) == 1:
        out["data_blur"] = f"{cdir(wildcards.ds, 0)}/data_blur.json"
    if config["refine"]["refine_xyz"] and B_TARGET == "global":
        out["xyz_target"] = _locscale_target(wildcards)
    if B_TARGET == "locscale_signal" and int(wildcards.cycle) > 1:
        if not has_half_maps(wildcards.ds):
            _fail(f"refine.b_target: locscale_signal needs half maps, and dataset {wildcards.ds!r} has a full map",
                  "give half_maps (or use_half_maps with emdb), or use refine.b_target: global")
        out.update(half_maps_input(wildcards))
    return out


def previous_model_validation(wildcards):
    """The previous cycle's model validation, which cycle c reuses when its model has the same coordinates
    (locscale.validation.reuse); none for cycle 0 or with model_validation.reuse_unchanged false."""
    c = int(wildcards.vcycle)
    if c < 1 or not config["model_validation"]["reuse_unchanged"]:
        return {}
    d = cdir(wildcards.ds, c - 1)
    return {"previous_summary": f"{d}/model_validation.json", "previous_residues": f"{d}/model_validation.tsv"}


def refine_threads(wildcards):
    """Cores of cycle c's refine job: the engine's, given whether the cycle keeps the refinement's own B level
    (servalcat then runs two programs side by side) or shifts every B to a reference level (one program)."""
    c = int(wildcards.cycle)
    held = level_is_held(c, config["refine"]["b_level"], has_data_blur=B_TARGET == "global" and c == 1)
    return ENGINE.job_threads(config["refine"]["threads"], keep_level=not held)


def previous_model_map(wildcards):
    """The previous cycle's model, refine record and model map, which cycle c's simulate step writes again when
    its model file and B raise are the same (locscale.cycle.steps.simulate_step); none for cycle 1 or with
    sharpen.reuse_unchanged false."""
    c = int(wildcards.cycle)
    if c < 2 or not config["sharpen"]["reuse_unchanged"]:
        return {}
    d = cdir(wildcards.ds, c - 1)
    return {"previous_model": f"{d}/model.cif", "previous_refine": f"{d}/refine.json",
            "previous_modelmap": f"{d}/modelmap.mrc"}


def previous_locscale(wildcards):
    """The previous cycle's LocScale map and record, which cycle c's LocScale step copies when it was made from
    the same inputs (locscale.cycle.steps.sharpen_step); none for cycle 1 or with sharpen.reuse_unchanged false."""
    c = int(wildcards.cycle)
    if c < 2 or not config["sharpen"]["reuse_unchanged"]:
        return {}
    d = cdir(wildcards.ds, c - 1)
    return {"previous_map": f"{d}/locscale.mrc", "previous_info": f"{d}/sharpen.json"}


def previous_refine(wildcards):
    """The previous cycle's refine record, whose refined model cycle c takes when it refines the same coordinates
    against the same maps with the same settings (locscale.cycle.refinement); none for cycle 1 or with
    refine.reuse_unchanged false."""
    c = int(wildcards.cycle)
    if c < 2 or not config["refine"]["reuse_unchanged"]:
        return {}
    return {"previous_refine": f"{cdir(wildcards.ds, c - 1)}/refine.json"}


def previous_crossval(wildcards):
    """The previous cycle's cross-validation, which cycle c reuses when its model has the same coordinates
    (locscale.validation.reuse); none for cycle 1 or with cross_validation.reuse_unchanged false."""
    c = int(wildcards.cycle)
    if c < 2 or not config["cross_validation"]["reuse_unchanged"]:
        return {}
    d = cdir(wildcards.ds, c - 1)
    return {"previous_info": f"{d}/crossval.json", "previous_curve": f"{d}/crossval.tsv"}


def crossval_beside(wildcards):
    """The previous cycle's cross-validation as an input of cycle c's convergence check: `all` asks for it with
    the previous cycle (all_input), so it starts once that cycle's model is refined and runs beside the steps of
    both cycles on the cores they leave idle; this input makes sure it is done before the loop moves on. The
    last cycle's is the summary's."""
    c = int(wildcards.cycle)
    if c < 2 or not crossval_enabled(wildcards.ds):
        return {}
    return {"crossval_previous": f"{cdir(wildcards.ds, c - 1)}/crossval.json"}


def previous_metrics(wildcards):
    return f"{cdir(wildcards.ds, int(wildcards.cycle) - 1)}/metrics.json"


def model_rebuilt(wildcards):
    return int(wildcards.cycle) > 1 and completion_after(int(wildcards.cycle) - 1)


def user_model_candidates(ds, cycle):
    d = cdir(ds, cycle)
    return [f"{d}/rebuilt_model.cif", f"{d}/rebuilt_model.pdb"]


def await_model_input(wildcards):
    """The cycle's LocScale map, plus the user's rebuilt model once it exists: adding the file changes the
    checkpoint's input set, so Snakemake re-runs it and the loop continues."""
    out = {"locscale": f"{cdir(wildcards.ds, wildcards.cycle)}/locscale.mrc"}
    present = [p for p in user_model_candidates(wildcards.ds, wildcards.cycle) if Path(p).exists()]
    if present:
        out["user_model"] = present[0]
    return out


# ---------------------------------------------------------------------------------------------- resources
def by_input_size(per_mb, base):
    """A resource request (memory in MB, run time in minutes) growing with the size of the rule's input files
    (maps dominate): base + per_mb × their size in MB. The previous cycle's files a step takes instead of
    computing (inputs named previous_*) are left out: the step reads them in place of what it would compute."""

    def request(wildcards, input):
        previous = sum(os.path.getsize(f) for name, f in input.items()
                       if name.startswith("previous_") and isinstance(f, str) and os.path.exists(f))
        return int(base + per_mb * max(0.0, input.size_mb - previous / 1024**2))

    return request


def sharpen_threads():
    """sharpen.threads, but with cross-validation at most --cores − 1: a cycle's cross-validation runs beside the
    next cycle (one core), and a LocScale job asking for every core would wait for it to finish."""
    threads = int(config["sharpen"]["threads"])
    cores = workflow.cores
    if any(crossval_enabled(ds) for ds in DATASETS) and isinstance(cores, int) and cores > 1:
        threads = min(threads, cores - 1)
    return max(1, threads)


# ---------------------------------------------------------------------------------------------- engine
def _refine_params():
    """config['refine'] with the monomer library resolved (config value or $CLIBD_MON), so that which library
    restrains the refinement is part of the rule's parameters; and the engine (locscale.engines)."""
    params = dict(config["refine"])
    try:
        engine = make_engine(params)
    except LocScaleInputError as err:
        raise WorkflowError(str(err)) from None
    params["monlib"] = str(engine.monlib) if getattr(engine, "monlib", None) else None
    return params, engine


def _crossval_engine():
    """The engine that cross-validates (its half-map variant); the refinement engine itself when no dataset is
    cross-validated. An engine that cannot cross-validate fails here, before any job runs."""
    if not any(crossval_enabled(ds) for ds in DATASETS):
        return ENGINE
    try:
        return ENGINE.for_cross_validation(bool(REFINE["refine_xyz"]))
    except LocScaleInputError as err:
        raise WorkflowError(f"config: {err}") from None


REFINE, ENGINE = _refine_params()
CROSSVAL_ENGINE = _crossval_engine()


def _check_engine():
    """Fail before any job runs when the selected refinement program is missing (the engine decides, given how
    Snakemake deploys software: with --sdm conda, servalcat comes from its conda environment)."""
    methods = {m.name for m in workflow.deployment_settings.deployment_method}
    try:  # a dry run runs and sources nothing (no --version probe, no environment script)
        ENGINE.check_before_workflow(methods, dry_run=bool(workflow.output_settings.dryrun))
    except LocScaleInputError as err:
        raise WorkflowError(f"refinement engine not available: {err}") from None


_check_engine()


# ---------------------------------------------------------------------------------------------- the loop
def _is_converged(ds, asked):
    """Cycle c's decision; `asked` collects the cycles asked about (the last is the one the walk stopped at)."""

    def converged(c):
        asked.append(c)
        return read_decision(checkpoints.converged.get(ds=ds, cycle=f"{c:02d}").output[0])

    return converged


def _is_waiting(ds):
    if COMPLETION["mode"] != "manual":
        return None

    def waiting(c):
        if not completion_after(c):
            return False
        path = checkpoints.await_model.get(ds=ds, cycle=f"{c:02d}").output[0]
        return json.loads(Path(path).read_text())["status"] == "waiting"

    return waiting


def all_input(wildcards):
    """Targets of `all`: walk the converged checkpoints of cycles 1, 2, ... (the only walker: an aggregation rule
    with outputs that walked them would stop extending the loop when settings change).

    Datasets are walked independently: a dataset whose next checkpoint has not run yet contributes that
    checkpoint's output (flagged as a checkpoint target, so Snakemake re-evaluates this function when it is done)
    and the walk goes on with the next dataset, so every dataset's cycles advance without waiting for another's.
    With half maps, the cycles walked so far contribute their cross-validations too: each starts as soon as its
    cycle's model is refined and runs beside the cycles' other steps. (The ChimeraX scripts stay at the end, with
    the summary: on a cluster the two go as one job when grouped.)"""
    targets = []
    for ds in DATASETS:
        asked = []
        try:
            walk = walk_cycles(_is_converged(ds, asked), MAX_CYCLES, _is_waiting(ds))
        except IncompleteCheckpointException as pending:
            targets.append(pending.targetfile)
            if crossval_enabled(ds):  # the cycles' cross-validations start once their models are refined
                targets += [f"{cdir(ds, c)}/crossval.json" for c in asked]
            continue
        WALKS[ds] = walk
        targets += files.summary_targets(ds, walk.last)
        targets += files.final_outputs(ds, HYBRID).values()
        targets += [f"{cdir(ds, c)}/chimerax.cxc" for c in range(1, walk.last + 1)]
    return targets


def final_input(wildcards):
    """The selection of the loop's last summary and every cycle's files (the script copies the chosen cycle's)."""
    if wildcards.ds not in WALKS:
        raise WorkflowError(f"results/{wildcards.ds}/final/ is made by the target `all` (it needs the loop's last "
                            "cycle): run snakemake without a file target")
    return files.final_inputs(wildcards.ds, WALKS[wildcards.ds].last, HYBRID)


def summary_input(wildcards):
    """Everything the summary of cycles 0 ... last reads (with model completion by coot, the record of each model
    built after one of its cycles)."""
    ds, last = wildcards.ds, int(wildcards.last)
    built = [c for c in range(1, last) if COMPLETION["mode"] == "coot" and completion_after(c)]
    return files.summary_inputs(ds, last, crossval=crossval_enabled(ds), completion_records=built)


def report_landing_page():
    """The report's landing page (`snakemake --report`): workflow/report/workflow.rst followed by each dataset's
    latest cycle table with the final cycle marked, written to .snakemake/locscale/report.rst; the template alone
    before any summary exists (and in the jobs' own processes)."""
    template = Path(workflow.basedir) / "workflow" / "report" / "workflow.rst"
    tables = [t for ds in DATASETS for t in Path(files.RESULTS, ds).glob("summary_upto_*.tsv")]
    if not workflow.is_main_process or not tables:
        return str(template)
    from locscale.cycle.report import write_landing_page  # plotting libraries: only once there is a table

    page = write_landing_page(template, files.RESULTS, DATASETS,
                              Path(".snakemake/locscale/report.rst").resolve())
    return str(page or template)


def print_run_summary(failed=False):
    """What the run ended with, per dataset (called on success and on error): where each finished dataset
    stopped, and after an error which datasets failed, in which step and why."""
    from locscale.cycle.status import failed_steps

    if failed:
        for ds in DATASETS:
            steps = failed_steps(ds, RUN_STARTED)
            for step in steps:
                where = f"cycle {int(step.cycle)}" if step.cycle else "outside the cycles"
                print(f"LocScale cycles: {ds} FAILED in step {step.rule} ({where}): {step.message}\n"
                      f"  log: {step.log}")
            if not steps and ds not in WALKS:
                print(f"LocScale cycles: {ds} did not finish (stopped with the run; snakemake --keep-going lets "
                      "the other datasets finish when one fails)")
    for ds, walk in WALKS.items():
        table = f"{files.summary_base(ds, walk.last)}.tsv"
        selection = Path(files.final_outputs(ds, HYBRID)["selection"])
        if selection.exists():
            sel = json.loads(selection.read_text())
            flagged = {c: f for c, f in sel["flags"].items() if f}
            print(f"LocScale cycles: {ds}: results/{ds}/final/ holds cycle {sel['cycle']} ({sel['reason']})")
            for c, f in sorted(flagged.items(), key=lambda kv: int(kv[0])):
                print(f"  WARNING cycle {c}: {'; '.join(f)}")
        if walk.stopped_by == "converged":
            print(f"LocScale cycles: {ds} converged at cycle {walk.last}; per-cycle table: {table}")
        elif walk.stopped_by == "max_cycles":
            print(f"LocScale cycles: {ds} reached max_cycles = {walk.last} without converging; per-cycle table: "
                  f"{table} (raise max_cycles and run snakemake again to continue)")
        else:
            a, b = user_model_candidates(ds, walk.last)
            print(f"LocScale cycles: {ds} is WAITING FOR A REBUILT MODEL after cycle {walk.last}.\n"
                  f"  Rebuild or extend the model in {cdir(ds, walk.last)}/model.cif against the LocScale map "
                  f"{cdir(ds, walk.last)}/locscale.mrc (ChimeraX: open {cdir(ds, walk.last)}/chimerax.cxc),\n"
                  f"  save it as {a} (or {b}) and run snakemake again to continue with cycle {walk.last + 1}.\n"
                  f"  Per-cycle table so far: {table}")
