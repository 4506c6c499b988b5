"""Model building with Coot's headless API (``coot-headless-api``, GPLv3), run as its own process::

    python -m locscale.building.coot_tool fill   --model M.cif --map F.mrc --out OUT.cif --json out.json
    python -m locscale.building.coot_tool trace  --model M.cif --map F.mrc --plan P.json --seed S \
        --out O.cif --json o.json
    python -m locscale.building.coot_tool repair --model M.cif --map F.mrc --plan S.json --out O.cif --json o.json
    python -m locscale.building.coot_tool score  --model M.cif --map F.mrc --plan R.json --json out.json
    python -m locscale.building.coot_tool register --model M.cif --map F.mrc --plan S.json --json out.json

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
* ``repair`` (plan: segments with ``built`` residues and ``anchors``; ``repair``: which repairs): peptide flips
  that raise the segment's Ramachandran probabilities (``flip_peptide_using_cid``, a rigid 180° turn of the
  peptide plane; greedy), and for side chains that overlap other atoms or are rotamer outliers the best of the
  fitted side chain and the library rotamers (``change_to_next_rotamer``). Geometric operations only: the same
  input gives the same output.
* ``score`` (plan: ``score``, the residues): per residue the density correlation
  (``density_correlation_analysis``), Q-score (``get_q_score``), Ramachandran and rotamer probability and bad
  atom overlaps (``get_atom_overlaps``, as the model validation counts them), and the CA position.
* ``register`` (plan: segments with ``built``, ``shifts`` and the ``sequence`` around them): for every shift k the
  segment's residues mutated to the sequence's types of their numbers + k, rotamers fitted, and the mean density
  correlation of those residues.

The plan (JSON, written by :mod:`locscale.building.completion`)::

    {"segments": [{"id": "A:58-62", "chain": "A", "anchor": 57, "direction": 1,
                   "residues": [[58, "HIS"], [59, "ALA"], ...]}, ...]}

``direction`` is +1 (build towards higher residue numbers from ``anchor``: a gap from its N-terminal anchor or a
C-terminal end) or -1 (towards lower numbers: a gap from the residue after it, or an N-terminal end).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import sys
import time
from pathlib import Path

from ..outputs import atomic_output, write_text_atomic
from ..validation.coot_tool import OVERLAP_VOLUME_BAD, read_model_and_map

#: a peptide flip is kept when it lowers the segment's Σ −ln(Ramachandran probability) by more than this
FLIP_GAIN = 0.5
#: at most this many rotamers are tried per side chain
MAX_ROTAMERS = 40


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


#: atoms of a residue that are not its side chain beyond CB
MAIN_CHAIN = {"N", "CA", "C", "O", "CB", "OXT"}


def bad_overlaps(mc, imol: int) -> dict[tuple[str, int], list[dict]]:
    """{(chain, residue number): its bad overlaps} -- the overlaps the model validation counts (coot
    ``get_atom_overlaps``: volume >= OVERLAP_VOLUME_BAD, not a hydrogen bond; bonded atoms are not overlaps; two
    atoms of one strained residue can be), each with the partner residue (itself for one inside the residue), the
    volume and whether this residue's atom is in its side chain."""
    out: dict[tuple[str, int], list[dict]] = {}
    for o in mc.get_atom_overlaps(imol):
        if o.is_h_bond or o.overlap_volume < OVERLAP_VOLUME_BAD:
            continue
        a, b = o.atom_spec_1, o.atom_spec_2
        ka, kb = (a.chain_id, int(a.res_no)), (b.chain_id, int(b.res_no))
        for key, mine, other in ((ka, a, kb),) if ka == kb else ((ka, a, kb), (kb, b, ka)):
            out.setdefault(key, []).append({"with": f"{other[0]}{other[1]}", "volume": float(o.overlap_volume),
                                            "side_chain": mine.atom_name.strip() not in MAIN_CHAIN})
    return out


def _rama_cost(rama: dict, keys: list) -> float:
    """Σ −ln p over `keys` (p floored at 1e-4; a residue without φ/ψ costs nothing)."""
    return float(sum(-math.log(max(rama.get(k, 1.0), 1e-4)) for k in keys))


def _side_chain_overlap(found: dict, key) -> tuple[int, float]:
    hits = [o for o in found.get(key, []) if o["side_chain"]]
    return len(hits), round(sum(o["volume"] for o in hits), 3)


def repair(model: str, map_path: str, plan: dict, out: Path) -> dict:
    """Deterministic repairs of the built residues (no refinement; the plan's ``repair`` says which, default
    both): flips of the peptides of new residues (with each other and with their anchors) that raise the
    Ramachandran probabilities of a segment's residues and its anchors, and
    other rotamers for built side chains that overlap other atoms or are rotamer outliers. A flip is kept when it
    lowers Σ −ln p of the segment by more than FLIP_GAIN (greedy, best first). Of the side chain as fitted and
    its library rotamers the one with the fewest side-chain overlaps is kept, then not a rotamer outlier, then
    the smallest overlap volume, then the highest Q-score."""
    mc, imol, imap = _container(model, map_path)
    flips, rotamers = [], []
    what = plan.get("repair", ["flips", "rotamers"])
    for seg in plan["segments"]:
        chain = seg["chain"]
        built = [int(n) for n in seg["built"] if _has_residue(mc, imol, chain, int(n))]
        if not built:
            continue
        moving = sorted(set(built) | {int(a) for a in seg["anchors"] if _has_residue(mc, imol, chain, int(a))})
        keys = [(chain, n) for n in moving]
        # a peptide flip moves C and O of its first residue and N of its second: a model residue next to a new one
        # gives only those atoms (which the builder's refinement moves too)
        peptides = [n for n in moving if n + 1 in moving and (n in built or n + 1 in built)]
        for _ in range(2 * len(peptides) if "flips" in what else 0):
            cost = _rama_cost(_per_residue(mc.ramachandran_analysis(imol)), keys)
            best = None
            for n in peptides:
                mc.flip_peptide_using_cid(imol, f"//{chain}/{n}/C", "")
                trial = _rama_cost(_per_residue(mc.ramachandran_analysis(imol)), keys)
                mc.flip_peptide_using_cid(imol, f"//{chain}/{n}/C", "")
                if trial < cost - FLIP_GAIN and (best is None or trial < best[1]):
                    best = (n, trial)
            if best is None:
                break
            mc.flip_peptide_using_cid(imol, f"//{chain}/{best[0]}/C", "")
            flips.append({"segment": seg["id"], "peptide": f"{chain}{best[0]}-{best[0] + 1}",
                          "cost_before": round(cost, 3), "cost_after": round(best[1], 3)})
        for n in built if "rotamers" in what else []:
            cid = f"//{chain}/{n}"
            name = mc.get_residue_name(imol, chain, n, "")
            if name in ("GLY", "ALA"):
                continue
            rot = _per_residue(mc.rotamer_analysis(imol)).get((chain, n), float("nan"))
            found = bad_overlaps(mc, imol)
            hits = _side_chain_overlap(found, (chain, n))
            if hits[0] == 0 and not (math.isfinite(rot) and rot <= 0.0):
                continue
            q0 = _per_residue(mc.get_q_score(imol, imap)).get((chain, n), float("nan"))
            current = (hits[0], int(math.isfinite(rot) and rot <= 0.0), hits[1],
                       -round(q0, 4) if math.isfinite(q0) else 0.0, -1, "")
            saved = mc.copy_molecule(imol)
            options, seen = [current], set()
            for _ in range(MAX_ROTAMERS):
                info = mc.change_to_next_rotamer(imol, cid, "")
                if int(info.status) != 1 or int(info.rank) in seen:
                    break
                seen.add(int(info.rank))
                q = _per_residue(mc.get_q_score(imol, imap)).get((chain, n), float("nan"))
                ov = _side_chain_overlap(bad_overlaps(mc, imol), (chain, n))
                r = _per_residue(mc.rotamer_analysis(imol)).get((chain, n), float("nan"))
                options.append((ov[0], int(math.isfinite(r) and r <= 0.0), ov[1],
                                -round(q, 4) if math.isfinite(q) else 0.0, int(info.rank), info.name))
            if not options:
                continue
            best = min(options)
            if best[4] < 0:  # no library rotamer is better than the fitted side chain: put it back
                mc.replace_fragment(imol, saved, cid)
            else:
                for _ in range(MAX_ROTAMERS):  # cycle back to the chosen rotamer
                    if int(mc.change_to_next_rotamer(imol, cid, "").rank) == best[4]:
                        break
            mc.close_molecule(saved)
            if best[4] < 0:
                continue
            rotamers.append({"residue": f"{chain}{n}", "rotamer": best[5], "side_chain_overlaps_before": hits[0],
                             "side_chain_overlaps_after": best[0]})
    write_model(mc, imol, out)
    return {"flips": flips, "rotamers": rotamers}


def score(model: str, map_path: str, plan: dict) -> dict:
    """Per-residue values of the plan's residues (``score``: [[chain, number], ...]): density correlation, Q-score,
    Ramachandran and rotamer probability, bad overlaps with other residues, CA position."""
    mc, imol, imap = _container(model, map_path)
    cc = _per_residue(mc.density_correlation_analysis(imol, imap))
    q = _per_residue(mc.get_q_score(imol, imap))
    rama = _per_residue(mc.ramachandran_analysis(imol))
    rot = _per_residue(mc.rotamer_analysis(imol))
    found = bad_overlaps(mc, imol)
    nan = float("nan")
    rows = []
    for chain, resnum in sorted({(c, int(n)) for c, n in plan["score"]}):
        if not _has_residue(mc, imol, chain, resnum):
            continue
        key = (chain, resnum)
        ca = list(mc.get_residue_CA_position(imol, f"//{chain}/{resnum}"))
        rows.append({"chain": chain, "resnum": resnum, "cc": cc.get(key, nan), "q_score": q.get(key, nan),
                     "rama_probability": rama.get(key, nan), "rotamer_probability": rot.get(key, nan),
                     "overlaps": len(found.get(key, [])),
                     "overlaps_with": sorted({o["with"] for o in found.get(key, [])}), "ca": ca})
    return {"residues": rows}


def register(model: str, map_path: str, plan: dict) -> dict:
    """The register scan: for every segment and every shift k of its ``shifts`` for which the sequence has a
    residue at every number + k, the built residues mutated to the sequence shifted by k (residue n takes the type
    of n + k), their rotamers fitted, and their density correlation with the map (per residue and the mean)."""
    mc, imol0, imap = _container(model, map_path)
    out = []
    for seg in plan["segments"]:
        chain = seg["chain"]
        built = [int(n) for n in seg["built"] if _has_residue(mc, imol0, chain, int(n))]
        sequence = {int(k): v for k, v in seg["sequence"].items()}
        scores, per_residue = {}, {}
        for k in seg["shifts"]:
            if not built or any(n + k not in sequence for n in built):
                continue
            imol = mc.copy_molecule(imol0)
            for n in built:
                name = sequence[n + k]
                if mc.get_residue_name(imol, chain, n, "") != name:
                    mc.mutate(imol, f"//{chain}/{n}", name)
                if name not in ("GLY", "ALA"):
                    mc.auto_fit_rotamer(imol, chain, n, "", "", imap)
            cc = _per_residue(mc.density_correlation_analysis(imol, imap))
            values = {str(n): cc.get((chain, n), float("nan")) for n in built}
            per_residue[str(k)] = values
            scores[str(k)] = float(sum(values.values()) / len(values))
            mc.close_molecule(imol)
        out.append({"id": seg["id"], "residues": built, "scores": scores, "per_residue": per_residue})
    return {"segments": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m locscale.building.coot_tool", description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["fill", "trace", "repair", "score", "register"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--map", required=True)
    parser.add_argument("--out", help="model written by this step (fill, trace)")
    parser.add_argument("--json", required=True, help="what this step did (JSON)")
    parser.add_argument("--plan", help="segments (JSON; trace, repair, score, register)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trace's random trials")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out) if args.out else None
    plan = json.loads(Path(args.plan).read_text()) if args.plan else {"segments": []}
    if args.step in ("fill", "trace", "repair") and not args.out:
        parser.error(f"{args.step} needs --out")
    if args.step == "fill":
        result = fill(args.model, args.map, out)
    elif args.step == "trace":
        result = trace(args.model, args.map, plan, args.seed, out)
    elif args.step == "repair":
        result = repair(args.model, args.map, plan, out)
    elif args.step == "register":
        result = register(args.model, args.map, plan)
    else:
        result = score(args.model, args.map, plan)
    result["seconds"] = time.perf_counter() - t0
    write_text_atomic(Path(args.json), json.dumps(result, indent=1, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
