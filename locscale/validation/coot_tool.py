"""Model validation with Coot's headless API (``coot-headless-api``, GPLv3), run as its own process::

    python -m locscale.validation.coot_tool --model M.cif --map F.mrc --json out.json --tsv out.tsv [--ligand L.cif]

This is the only module of locscale that imports ``coot_headless_api``, and nothing imports this module: it runs
as a separate program (:mod:`locscale.validation.model` starts it), because coot is GPLv3 and because importing
coot and cctbx into one process crashes.

What it measures, with Coot's own definitions (coot 1.3.3 source, ``api/molecules-container-analysis.cc``):

* **Ramachandran**: ``ramachandran_validation`` gives φ/ψ and the clipper Top8000 probability (general, GLY and
  PRO tables: coot does not use the pre-Pro, Ile/Val or cis-Pro tables). Coot's API calls a residue not allowed
  when its probability is below 0.002 (``coords/phi-psi-prob.cc``) and its Ramachandran plot draws the
  preferred (favoured) contour at 0.02 (``rama_plot::default_level_prefered``), so: favoured p ≥ 0.02, allowed
  0.002 ≤ p < 0.02, outlier p < 0.002.
* **Rotamers**: ``rotamer_analysis`` gives, per residue with more than 5 heavy atoms, the prior probability (%) of
  the library rotamer (Lovell et al. 2000 penultimate library) whose χ windows contain the residue's χ angles,
  and 0 when no rotamer matches, when a χ atom is missing, or when the residue type has no rotamer table (e.g.
  a ligand). The outlier flag is therefore only defined here for the 19 side chains coot has χ definitions for
  (all standard amino acids except GLY and ALA, plus MSE) with all their χ atoms present: 1.0 when coot's
  probability is 0 (no rotamer matches), 0.0 otherwise, NaN for every other residue.
* **Atom overlaps**: ``get_atom_overlaps`` lists every pair of non-bonded atoms whose van der Waals spheres
  overlap, with the overlap volume (Å³). Coot's validation GUI ("dynamic validation" outliers list,
  ``src/dynamic-validation.cc``) lists an overlap as a problem when its volume is at least 1.2 Å³; overlaps
  coot marks as hydrogen bonds are not counted. ``atom_overlaps_per_1000_atoms`` = those overlaps per 1000
  atoms of the model: clashscore-like, but not MolProbity's clashscore (no added hydrogens, no probe dots).
* **Q-score** (Pintilie et al. 2020) per residue from ``get_q_score``, and the per-residue density correlation
  from ``density_correlation_analysis`` (``cc_coot``).

``try_read_dictionaries_for_new_residue_types`` must run before the overlaps (without dictionaries coot finds
no overlaps at all, silently; measured: a single residue type without a dictionary has the same effect on the
whole model, so the overlaps are then NaN with a warning). The wheel's ``__init__`` points ``COOT_PREFIX`` at
its bundled data (monomer library, rotamer and Ramachandran tables) when neither ``COOT_PREFIX`` nor
``COOT_DATA_DIR`` is set.
"""

from __future__ import annotations

import math
import sys
import time

from .tool import tool_parser, write_results

#: Coot's thresholds (see the module docstring)
RAMA_FAVOURED_P = 0.02
RAMA_ALLOWED_P = 0.002
OVERLAP_VOLUME_BAD = 1.2  # Å³

# χ-defining atoms of coot's rotamer analysis (coot ligand/rotamer.cc, rotamer_atoms()): N, CA, CB plus these
_CHI_ATOMS = {
    "SER": ("OG",), "CYS": ("SG",), "THR": ("OG1",), "VAL": ("CG1",), "ILE": ("CG1", "CD1"),
    "LEU": ("CG", "CD1"), "ASP": ("CG", "OD1"), "ASN": ("CG", "OD1"), "GLU": ("CG", "CD", "OE1"),
    "GLN": ("CG", "CD", "OE1"), "MET": ("CG", "SD", "CE"), "MSE": ("CG", "SE", "CE"),
    "LYS": ("CG", "CD", "CE", "NZ"), "ARG": ("CG", "CD", "NE", "CZ"), "HIS": ("CG", "ND1"),
    "PHE": ("CG", "CD1"), "TYR": ("CG", "CD1"), "TRP": ("CG", "CD1"), "PRO": ("CG", "CD"),
}

TSV_COLUMNS = ["chain", "resnum", "icode", "resname", "rama", "phi", "psi", "rama_probability",
               "rotamer_probability", "rotamer_outlier", "q_score", "cc_coot", "overlaps"]


def read_model_and_map(mc, model, map_path) -> tuple[int, int]:
    """Read `model` and `map_path` into the coot molecules container `mc`: (model, map) molecule numbers.
    Shared with :mod:`locscale.building.coot_tool` (the other module allowed to import coot)."""
    imol = mc.read_coordinates(str(model))
    if imol < 0:
        raise RuntimeError(f"coot could not read the model {model}")
    imap = mc.read_ccp4_map(str(map_path), False)
    if imap < 0:
        raise RuntimeError(f"coot could not read the map {map_path}")
    return imol, imap


def rama_class(probability: float) -> str:
    """Coot's class of a Ramachandran probability: favoured / allowed / outlier."""
    if probability >= RAMA_FAVOURED_P:
        return "favoured"
    return "allowed" if probability >= RAMA_ALLOWED_P else "outlier"


def rotamer_covered(resname: str, atom_names: set[str]) -> bool:
    """True when coot's rotamer analysis can classify this residue (χ definitions known, all χ atoms present)."""
    chi = _CHI_ATOMS.get(resname)
    return chi is not None and {"N", "CA", "CB", *chi} <= atom_names


def _key(spec) -> tuple[str, int, str]:
    return spec.chain_id, int(spec.res_no), spec.ins_code.strip()


def _per_residue(info) -> dict:
    """{(chain, resnum, icode): value} of a coot validation_information_t."""
    return {_key(r.residue_spec): float(r.function_value) for ch in info.cviv for r in ch.rviv}


def _model_residues(path: str) -> list[tuple[str, int, str, str, set[str]]]:
    """(chain, resnum, icode, resname, heavy-atom names) of the first model, read with gemmi."""
    import gemmi

    st = gemmi.read_structure(path)
    return [(ch.name, int(res.seqid.num), res.seqid.icode.strip(), res.name,
             {at.name for at in res if not at.is_hydrogen()}) for ch in st[0] for res in ch]


def validate(model: str, map_path: str, ligands: list[str] = (), density_correlation_only: bool = False
             ) -> tuple[dict, list[dict]]:
    """Run coot's validation of `model` against `map_path`: (summary, per-residue rows). With
    `density_correlation_only`, only the per-residue density correlation (the one value that reads the
    B-factors) is computed; every other value is NaN."""
    import coot_headless_api

    seconds = {}
    t0 = time.perf_counter()
    mc = coot_headless_api.molecules_container_t(False)
    mc.set_make_backups(False)  # no coot-backup/ folder in the current directory
    for lig in ligands:
        mc.import_cif_dictionary(str(lig), mc.get_imol_enc_any())  # types still missing are listed below
    imol, imap = read_model_and_map(mc, model, map_path)
    dictionaries_ok = bool(mc.try_read_dictionaries_for_new_residue_types(imol))
    missing = list(mc.get_residue_names_with_no_dictionary(imol))
    n_atoms = int(mc.get_number_of_atoms(imol))
    seconds["read"] = time.perf_counter() - t0

    rama, rama_p, rotamer_p, overlaps, bad, q = {}, {}, {}, [], [], {}
    per_residue_overlaps: dict[tuple[str, int, str], int] = {}
    if not density_correlation_only:
        t = time.perf_counter()
        for pp in mc.ramachandran_validation(imol):
            s = pp.phi_psi
            rama[(s.chain_id, int(s.residue_number), s.ins_code.strip())] = (float(s.phi()), float(s.psi()))
        rama_p = _per_residue(mc.ramachandran_analysis(imol))
        seconds["ramachandran"] = time.perf_counter() - t

        t = time.perf_counter()
        rotamer_p = _per_residue(mc.rotamer_analysis(imol))
        seconds["rotamers"] = time.perf_counter() - t

        t = time.perf_counter()
        overlaps = mc.get_atom_overlaps(imol)
        bad = [o for o in overlaps if o.overlap_volume >= OVERLAP_VOLUME_BAD and not o.is_h_bond]
        for o in bad:  # each bad overlap counts for each residue it involves (once for one inside a residue)
            for key in {_key(o.atom_spec_1), _key(o.atom_spec_2)}:
                per_residue_overlaps[key] = per_residue_overlaps.get(key, 0) + 1
        seconds["overlaps"] = time.perf_counter() - t

        t = time.perf_counter()
        q = _per_residue(mc.get_q_score(imol, imap))
        seconds["q_score"] = time.perf_counter() - t
    t = time.perf_counter()
    cc = _per_residue(mc.density_correlation_analysis(imol, imap))
    seconds["density_correlation"] = time.perf_counter() - t

    nan = float("nan")
    warnings = []
    if missing and not density_correlation_only:
        # measured: one residue type without a dictionary and coot finds no overlap at all in the whole model
        warnings.append(f"no dictionary for residue type(s) {', '.join(missing)}: coot's atom overlaps are not "
                        "reported (coot returns none at all then); give their restraint dictionaries (--ligand)")
    rows = []
    for chain, resnum, icode, resname, atoms in _model_residues(model):
        key = (chain, resnum, icode)
        p = rama_p.get(key, nan)
        phi, psi = rama.get(key, (nan, nan))
        rot = rotamer_p.get(key, nan) if rotamer_covered(resname, atoms) else nan
        rows.append({"chain": chain, "resnum": resnum, "icode": icode, "resname": resname,
                     "rama": rama_class(p) if math.isfinite(p) else "", "phi": phi, "psi": psi,
                     "rama_probability": p, "rotamer_probability": rot,
                     "rotamer_outlier": nan if not math.isfinite(rot) else float(rot <= 0.0),
                     "q_score": q.get(key, nan), "cc_coot": cc.get(key, nan),
                     "overlaps": nan if missing or density_correlation_only else per_residue_overlaps.get(key, 0)})

    classes = [r["rama"] for r in rows if r["rama"]]
    rot_flags = [r["rotamer_outlier"] for r in rows if math.isfinite(r["rotamer_outlier"])]
    q_values = sorted(v for r in rows if math.isfinite(v := r["q_score"]))

    def pct(n: int, total: int) -> float:
        return 100.0 * n / total if total else nan

    summary = {
        "version": str(mc.package_version()),
        "n_atoms": n_atoms,
        "dictionaries_ok": dictionaries_ok,
        "residue_types_without_dictionary": missing,
        "n_rama": len(classes),
        "rama_favoured_pct": pct(classes.count("favoured"), len(classes)),
        "rama_allowed_pct": pct(classes.count("allowed"), len(classes)),
        "rama_outliers_pct": pct(classes.count("outlier"), len(classes)),
        "n_rotamer": len(rot_flags),
        "rotamer_outliers_pct": pct(int(sum(rot_flags)), len(rot_flags)),
        "n_overlaps": len(overlaps) if not density_correlation_only else nan,
        "n_bad_overlaps": len(bad) if not density_correlation_only else nan,
        "bad_overlap_volume": OVERLAP_VOLUME_BAD,
        "atom_overlaps_per_1000_atoms": (1000.0 * len(bad) / n_atoms if n_atoms and not missing
                                         and not density_correlation_only else nan),
        "density_correlation_only": density_correlation_only,
        "q_score_median": float(_median(q_values)),
        "warnings": warnings,
        "seconds": seconds,
    }
    for w in warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    return summary, rows


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    if n == 0:
        return float("nan")
    mid = n // 2
    return sorted_values[mid] if n % 2 else 0.5 * (sorted_values[mid - 1] + sorted_values[mid])


def main(argv: list[str] | None = None) -> int:
    parser = tool_parser("locscale.validation.coot_tool", __doc__, "per-residue values (TSV)")
    parser.add_argument("--ligand", action="append", default=[], help="restraint dictionary (CIF); repeatable")
    parser.add_argument("--density-correlation-only", action="store_true",
                        help="compute only the per-residue density correlation (the rest NaN)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    summary, rows = validate(args.model, args.map, args.ligand, args.density_correlation_only)
    return write_results(args, summary, rows, TSV_COLUMNS, t0)


if __name__ == "__main__":
    sys.exit(main())
