"""Model building with Coot's headless API (``coot-headless-api``, GPLv3), run as its own process::

    python -m locscale.building.coot_tool fill   --model M.cif --map F.mrc --out OUT.cif --json out.json
    python -m locscale.building.coot_tool trace  --model M.cif --map F.mrc --plan P.json --seed S \
        --out O.cif --json o.json
    python -m locscale.building.coot_tool score  --model M.cif --map F.mrc --plan plan.json --json out.json

This is the only module of locscale that imports ``coot_headless_api`` for building, and nothing imports it: it
runs as a separate program, started by :mod:`locscale.building.completion` (which plans what to build, runs the trials,
chooses, trims and writes the records), because coot is GPLv3 and because coot and cctbx crash in one process.

Each subcommand is one step, in a process of its own. Coot's real-space refinement is not used: it is not
reproducible (measured with coot-headless-api 1.3.3rc1 on the EMD-3488 crop, one thread, the same coordinates in,
in fresh processes: 1 run in 5 without load, 3 in 5 under load gave a refined segment differing by up to 0.09 Å,
and inside one process from the third refinement on nearly every run differed), so the builder refines with
servalcat instead (:mod:`locscale.building.completion`). The steps:

* ``fill``: ``fill_partial_residues`` (side chains truncated in the model are completed and fitted by coot).
* ``trace``: for every segment of the plan, residue by residue, ``add_terminal_residue_directly`` (coot's random
  φ/ψ trials, 3000 per residue, as ALA). Its random trials use the C library's ``random()``, which this step seeds
  (``srandom``) before every residue with a number made of the seed, the chain and the residue number, so a trace
  is the same for the same model, map and seed (measured: identical files in every run). Then ``mutate`` the
  traced residues to the sequence and ``auto_fit_rotamer`` each.
* ``score``: the per-residue density correlation (``density_correlation_analysis``) and the Ramachandran
  probability (``ramachandran_analysis``) of the plan's residues and two flanking residues each side.

The plan (JSON, written by :mod:`locscale.building.completion`)::

    {"segments": [{"id": "A:58-62", "chain": "A", "anchor": 57, "direction": 1,
                   "residues": [[58, "HIS"], [59, "ALA"], ...]}, ...]}

``direction`` is +1 (build towards higher residue numbers from ``anchor``: the first half of a gap or a C-terminal
end) or -1 (towards lower numbers: the second half of a gap, from the residue after it, or an N-terminal end).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from pathlib import Path

from ..outputs import atomic_output, write_text_atomic
from ..validation.coot_tool import read_model_and_map

#: flanking residues scored with each segment (each side)
FLANK = 2


def _container(model: str, map_path: str):
    """A coot molecules container with the model, the map (the refinement map) and the dictionaries read."""
    import coot_headless_api

    mc = coot_headless_api.molecules_container_t(False)
    mc.set_max_number_of_threads(1)
    mc.set_make_backups(False)  # no coot-backup/ folder in the current directory
    imol, imap = read_model_and_map(mc, model, map_path)
    mc.try_read_dictionaries_for_new_residue_types(imol)
    mc.set_imol_refinement_map(imap)
    return mc, imol, imap


def _residue_seed(seed: int, chain: str, resnum: int) -> int:
    """The srandom() seed of one residue's trials: the same for the same (seed, chain, residue number)."""
    value = seed * 1_000_003 + resnum * 1009
    for ch in chain:
        value = value * 131 + ord(ch)
    return value % (2**31 - 1)


def _has_residue(mc, imol: int, chain: str, resnum: int) -> bool:
    return mc.get_number_of_atoms_in_residue(imol, f"//{chain}/{resnum}") > 0


def write_model(mc, imol: int, out: Path) -> None:
    with atomic_output(out) as tmp:
        mc.write_coordinates(imol, str(tmp))
        if not tmp.stat().st_size:
            raise RuntimeError(f"coot could not write {out}")


def fill(model: str, map_path: str, out: Path) -> dict:
    mc, imol, _ = _container(model, map_path)
    partial = [(s.chain_id, int(s.res_no)) for s in mc.residues_with_missing_atoms(imol)]
    status = int(mc.fill_partial_residues(imol)) if partial else 0
    write_model(mc, imol, out)
    return {"partial_residues": [f"{c}{n}" for c, n in sorted(partial)], "fill_status": status}


def trace(model: str, map_path: str, plan: dict, seed: int, out: Path) -> dict:
    libc = ctypes.CDLL(None)
    mc, imol, imap = _container(model, map_path)
    segments = []
    for seg in plan["segments"]:
        chain, step = seg["chain"], int(seg["direction"])
        prev = int(seg["anchor"])
        built, refused = [], ""
        for resnum, _resname in seg["residues"]:
            if int(resnum) != prev + step:
                refused = f"residue {resnum} does not follow {prev}"
                break
            libc.srandom(_residue_seed(seed, chain, int(resnum)))
            status, message = mc.add_terminal_residue_directly(imol, chain, prev, "")
            if status != 1 or not _has_residue(mc, imol, chain, int(resnum)):
                refused = f"coot placed no residue {chain}{resnum} ({message or 'no fit in the density'})"
                break
            built.append(int(resnum))
            prev = int(resnum)
        segments.append({"id": seg["id"], "built": built, "refused": refused})
    mutate_and_fit(mc, imol, imap, plan)
    write_model(mc, imol, out)
    return {"seed": seed, "segments": segments}


def _per_residue(info) -> dict:
    return {(ch.chain_id, int(r.residue_spec.res_no)): float(r.function_value) for ch in info.cviv for r in ch.rviv}


def _segment_residues(mc, imol: int, seg: dict) -> list[int]:
    return [int(n) for n, _ in seg["residues"] if _has_residue(mc, imol, seg["chain"], int(n))]


def mutate_and_fit(mc, imol: int, imap: int, plan: dict) -> None:
    """Mutate the traced ALA residues to the sequence and fit their rotamers (no refinement)."""
    for seg in plan["segments"]:
        present = _segment_residues(mc, imol, seg)
        for resnum, resname in seg["residues"]:
            if int(resnum) in present and resname != "ALA":
                mc.mutate(imol, f"//{seg['chain']}/{resnum}", resname)
                if resname != "GLY":
                    mc.auto_fit_rotamer(imol, seg["chain"], int(resnum), "", "", imap)


def score(model: str, map_path: str, plan: dict) -> dict:
    """Per-residue density correlation and Ramachandran probability of the plan's residues and their flanks."""
    mc, imol, imap = _container(model, map_path)
    scored = []
    for seg in plan["segments"]:
        numbers = [int(n) for n, _ in seg["residues"]] + [int(seg["anchor"])]
        lo, hi = min(numbers), max(numbers)
        scored.extend((seg["chain"], n) for n in range(lo - FLANK, hi + FLANK + 1))
    cc = _per_residue(mc.density_correlation_analysis(imol, imap))
    rama = _per_residue(mc.ramachandran_analysis(imol))
    rows = []
    for chain, resnum in sorted(set(scored)):
        if not _has_residue(mc, imol, chain, resnum):
            continue
        ca = list(mc.get_residue_CA_position(imol, f"//{chain}/{resnum}"))
        rows.append({"chain": chain, "resnum": resnum, "cc": cc.get((chain, resnum), float("nan")),
                     "rama_probability": rama.get((chain, resnum), float("nan")), "ca": ca})
    return {"residues": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m locscale.building.coot_tool", description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["fill", "trace", "score"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--map", required=True)
    parser.add_argument("--out", help="model written by this step (fill, trace)")
    parser.add_argument("--json", required=True, help="what this step did (JSON)")
    parser.add_argument("--plan", help="segments to build (JSON; trace and score)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trace's random trials")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out) if args.out else None
    plan = json.loads(Path(args.plan).read_text()) if args.plan else {"segments": []}
    if args.step in ("fill", "trace") and not args.out:
        parser.error(f"{args.step} needs --out")
    if args.step == "fill":
        result = fill(args.model, args.map, out)
    elif args.step == "trace":
        result = trace(args.model, args.map, plan, args.seed, out)
    else:
        result = score(args.model, args.map, plan)
    result["seconds"] = time.perf_counter() - t0
    write_text_atomic(Path(args.json), json.dumps(result, indent=1, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
