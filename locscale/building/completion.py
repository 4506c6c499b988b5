"""Automated model completion between cycles (``model_completion.mode: coot``): extend chain ends and fill gaps
against the sequence, residue by residue where the density supports it, complete truncated side chains.

Coot does the building in processes of its own (:mod:`locscale.building.coot_tool`, GPLv3; this module does not import
coot). What this module does, in order:

1. **Sequence** per chain: from a FASTA file (a record whose header's first word is the chain name, or names it
   as ``Chain A`` / ``Chains A, B``; a file with one record applies to every protein chain), else the model's own
   entity sequence (mmCIF ``entity_poly_seq`` / PDB ``SEQRES``). The model's residue numbers must follow the
   sequence with one offset per chain; a sequence that matches fewer than :data:`MIN_IDENTITY` of the model's
   residues at every offset is refused with a :class:`LocScaleInputError`.
2. **Plan**: every gap (residues missing between two model residues) and every missing chain end (at most
   ``max_residues_per_end`` residues, nearest first) is a segment, built from its anchor outwards (gaps from their
   N-terminal side). Refused with the reason: a gap longer than ``max_gap_residues``, or whose anchors are farther
   apart than its residues can span (3.8 Å per peptide, :data:`CA_STEP`).
3. **Trials**: ``trials`` traces of every segment, trial t with seed ``seed + t`` (coot's random φ/ψ trials,
   seeded; a gap from its N-terminal side), each refined with servalcat (coordinates only, ``refine_cycles``
   cycles, the monomer library's restraints; coot's refinement is not reproducible, see
   :mod:`locscale.building.coot_tool`) and scored by coot.
4. **Choice**, per segment, of the trial with the highest score (ties: the lowest trial number)::

       score = mean CC of the segment's new residues − 0.2 × (fraction of them that are Ramachandran outliers)
               − 0.2 × (1 if a gap was not closed, i.e. its last C is > 2.0 Å from the next residue's N)

   CC is coot's per-residue density correlation with the map; an outlier has coot's Ramachandran probability
   below 0.002 (the threshold of :mod:`locscale.validation.coot_tool`). Per-residue CC alone does not separate good
   from bad placements (a residue 6.3 Å off had CC 0.64), so the score adds the geometry and the trials.
5. **Trim**: a new residue whose CC is below ``min_fit`` is removed; at a chain end, so is every residue beyond
   it (a chain does not continue past an unsupported residue). ``min_fit`` is :data:`MIN_FIT` by default (see
   there for its calibration).
6. The built model (the input model with the side chains completed and the kept residues), a JSON record and a
   per-residue table. The same inputs give the same files, byte for byte (tested).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd

from ..cycle.defaults import with_schema_defaults
from ..errors import LocScaleInputError
from ..outputs import atomic_output
from ..tools.process import run_logged, tool_environment

#: the sequence must match at least this fraction of a chain's modelled residues (at its best offset)
MIN_IDENTITY = 0.9
#: the largest CA–CA distance of consecutive residues (Å): a gap of n residues spans at most (n + 1) × this
CA_STEP = 3.8
#: a gap is closed when the C of its last new residue is within this distance of the next residue's N (Å)
CLOSED_C_N = 2.0
#: coot's Ramachandran outlier threshold (probability)
RAMA_OUTLIER_P = 0.002
#: score penalties (see the module docstring)
OUTLIER_PENALTY = 0.2
OPEN_GAP_PENALTY = 0.2
#: Default trim threshold on a new residue's CC with the map (coot's density_correlation_analysis after the
#: servalcat refinement), for the workflow's case: building in a cycle's LocScale map. Calibrated on the 5NI1
#: phantom of benchmarks/bench_building.py (56 residues removed, completion after cycle 1): the 37 placements
#: within 1 Å of the truth had CC 0.61–0.93 (one 0.21), the 19 placements more than 1 Å off 0.21–0.87, so CC does
#: not separate them; 0.55 trims 6 of the 19 and none of the 36 good placements above 0.6 (0.35: 4 of 19). In the
#: crop run of the workflow (EMD-3488, LocScale map of cycle 1) the kept good residues had CC ≥ 0.60. In the
#: deposited EMD-3488 map CC runs lower (good placements 0.41–0.69): the tests build there with min_fit 0.35.
#: The value (0.55) is written only in the workflow's config schema (model_completion.coot.min_fit), as are the
#: other DEFAULTS.
DEFAULTS = with_schema_defaults("model_completion")["coot"]
MIN_FIT = DEFAULTS["min_fit"]

TABLE_COLUMNS = ["chain", "resnum", "resname", "segment", "kind", "status", "reason", "trial", "cc",
                 "rama_probability", "ca_x", "ca_y", "ca_z"]


@dataclass
class Segment:
    id: str
    chain: str
    kind: str  # gap | n_end | c_end
    anchor: int
    direction: int
    residues: list[tuple[int, str]]
    next_residue: int | None = None  # for a gap: the residue after it
    refused: str = ""
    trials: list[dict] = field(default_factory=list)
    record: dict = field(default_factory=dict)

    def plan(self) -> list[dict]:
        """The trace plan's entries (a gap is traced from its N-terminal anchor only: traced from both ends, the
        halves of the 5ME2 58–62 gap met with residue 61 6.7 Å off in both trials)."""
        return [{"id": self.id, "chain": self.chain, "anchor": self.anchor, "direction": self.direction,
                 "residues": [[n, r] for n, r in self.residues]}]


# ---------------------------------------------------------------------- sequences
def read_fasta(path) -> list[tuple[str, str]]:
    """(header, sequence) records of a FASTA file."""
    path = Path(path)
    if not path.is_file():
        raise LocScaleInputError("sequence file not found", "give a FASTA file (model_completion.sequence) or null "
                                 "to use the model's own sequence", path)
    records: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(">"):
            records.append((line[1:].strip(), []))
        elif line and records:
            records[-1][1].append(re.sub(r"[\s*]", "", line).upper())
        elif line:
            raise LocScaleInputError("not a FASTA file (sequence before the first '>' header)",
                                     "give a FASTA file: a '>' header line, then the one-letter sequence", path)
    if not records or not any(seq for _, seq in records):
        raise LocScaleInputError("no sequence in the FASTA file", "give a FASTA file with at least one record", path)
    return [(h, "".join(s)) for h, s in records]


def _fasta_chains(header: str) -> list[str]:
    m = re.search(r"Chains?\s+([A-Za-z0-9, ]+?)(?:\||$)", header)
    names = [c.strip().split("[")[0] for c in m.group(1).split(",")] if m else []
    first = header.split()[0].split("|")[0] if header.split() else ""
    return [n for n in names if n] + ([first] if first else [])


def _named_chains(header: str) -> list[str]:
    """Chains a header names explicitly: 'Chain(s) A, B', or a header that is a bare chain ID of one or two
    characters ('>A'); a longer first word may be a sequence name (e.g. '>sp|P69905|HBA_HUMAN')."""
    m = re.search(r"Chains?\s+([A-Za-z0-9, ]+?)(?:\||$)", header)
    if m:
        return [c.strip().split("[")[0] for c in m.group(1).split(",") if c.strip()]
    return [header.strip()] if re.fullmatch(r"[A-Za-z0-9]{1,2}", header.strip()) else []


def _protein_chains(structure: gemmi.Structure) -> list[str]:
    return [ch.name for ch in structure[0]
            if ch.get_polymer().check_polymer_type() in (gemmi.PolymerType.PeptideL, gemmi.PolymerType.PeptideD)]


def chain_sequences(structure: gemmi.Structure, fasta=None, sequence_model=None) -> dict[str, str]:
    """{chain: one-letter sequence} of the protein chains: from a FASTA file, else the entity sequences of
    `sequence_model` (a model file, e.g. the workflow's input model: a refinement program may rewrite the entity
    sequence of its output to the modelled residues only), else of `structure`."""
    chains = _protein_chains(structure)
    out: dict[str, str] = {}
    if fasta is not None:
        records = read_fasta(fasta)
        present = [ch.name for ch in structure[0]]
        for header, _ in records:
            # a record must name a chain the model has: one for a chain that does not exist is a mistake (a
            # wrong chain ID, or a sequence file for another model), not something to skip silently
            named = _fasta_chains(header) if len(records) > 1 else _named_chains(header)
            if named and not set(named) & set(present):
                raise LocScaleInputError(
                    f"the FASTA record '>{header}' names chain(s) {', '.join(dict.fromkeys(named))}, which the model "
                    f"does not have (its chains: {', '.join(present)})",
                    "name the model's chains in the headers ('>A', or 'Chains A, B'), or give one record for every "
                    "protein chain", fasta)
        if len(records) == 1:
            return {c: records[0][1] for c in chains}
        for header, seq in records:
            for name in _fasta_chains(header):
                if name in chains:
                    out.setdefault(name, seq)
        return out
    st = (structure if sequence_model is None else gemmi.read_structure(str(sequence_model))).clone()
    st.setup_entities()
    for ch in st[0]:
        if ch.name not in chains or not ch.get_polymer():
            continue
        ent = st.get_entity_of(ch.get_polymer())
        if ent is not None and ent.full_sequence:
            out[ch.name] = gemmi.one_letter_code([s.split(",")[0] for s in ent.full_sequence])
    return out


def _three(letter: str) -> str:
    info = gemmi.find_tabulated_residue
    for name in ("ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET", "PHE",
                 "PRO", "SER", "THR", "TRP", "TYR", "VAL"):
        if info(name).one_letter_code.upper() == letter:
            return name
    return ""


def sequence_offset(residues: list[tuple[int, str]], sequence: str) -> tuple[int, float]:
    """(offset, identity): residue number = offset + 1-based position in `sequence`, at the offset matching most of
    the model's `residues` (number, three-letter name); identity = matched fraction."""
    letters = [gemmi.find_tabulated_residue(name).one_letter_code.upper() if gemmi.find_tabulated_residue(name)
               else "X" for _, name in residues]
    counts: dict[int, int] = {}
    for (num, _), letter in zip(residues, letters, strict=True):
        for k, s in enumerate(sequence):
            if s == letter:
                counts[num - (k + 1)] = counts.get(num - (k + 1), 0) + 1
    if not counts:
        return 0, 0.0
    best = min(counts, key=lambda d: (-counts[d], abs(d), d))
    return best, counts[best] / len(residues)


# ---------------------------------------------------------------------- plan
def _ca(res: gemmi.Residue):
    ca = res.find_atom("CA", "*")
    return None if ca is None else ca.pos


def plan_segments(structure: gemmi.Structure, sequences: dict[str, str], *, max_residues_per_end: int,
                  max_gap_residues: int, sequence_path=None) -> tuple[list[Segment], dict]:
    """The segments to build and, per chain, the sequence offset and identity."""
    segments: list[Segment] = []
    chains: dict[str, dict] = {}
    for ch in structure[0]:
        if ch.name not in sequences:
            continue
        seq = sequences[ch.name]
        polymer = [r for r in ch.get_polymer() if r.seqid.icode in (" ", "")]
        residues = [(int(r.seqid.num), r.name) for r in polymer]
        if not residues:
            continue
        offset, identity = sequence_offset(residues, seq)
        chains[ch.name] = {"offset": offset, "identity": identity, "sequence_length": len(seq)}
        if identity < MIN_IDENTITY:
            where = "the FASTA file" if sequence_path else "the model's entity sequence (entity_poly_seq / SEQRES)"
            raise LocScaleInputError(
                f"chain {ch.name}: the sequence from {where} matches only {100 * identity:.0f} % of the model's "
                f"{len(residues)} residues at any residue-number offset (at least {100 * MIN_IDENTITY:.0f} % needed)",
                "give this model's sequence (a FASTA record whose header names the chain, e.g. '>A'), and residue "
                "numbers that follow it", sequence_path)

        def name_at(num: int, seq=seq, offset=offset) -> str:
            k = num - offset - 1
            return _three(seq[k]) if 0 <= k < len(seq) else ""

        first, last = residues[0][0], residues[-1][0]
        n_missing = [n for n in range(first - 1, offset, -1)][:max_residues_per_end]
        if n_missing:
            segments.append(Segment(f"{ch.name}:{n_missing[-1]}-{n_missing[0]}", ch.name, "n_end", first, -1,
                                    [(n, name_at(n)) for n in n_missing]))
        by_num = {int(r.seqid.num): r for r in polymer}
        for (a, _), (b, _) in zip(residues, residues[1:], strict=False):
            if b - a <= 1:
                continue
            gap = [(n, name_at(n)) for n in range(a + 1, b)]
            seg = Segment(f"{ch.name}:{a + 1}-{b - 1}", ch.name, "gap", a, 1, gap, next_residue=b)
            ca_a, ca_b = _ca(by_num[a]), _ca(by_num[b])
            span = ca_a.dist(ca_b) if ca_a is not None and ca_b is not None else float("nan")
            if len(gap) > max_gap_residues:
                seg.refused = f"gap of {len(gap)} residues is longer than max_gap_residues = {max_gap_residues}"
            elif span > CA_STEP * (len(gap) + 1):
                seg.refused = (f"its anchors' CA are {span:.1f} Å apart: {len(gap)} residues cannot span more than "
                               f"{CA_STEP * (len(gap) + 1):.1f} Å")
            elif any(not name for _, name in gap):
                seg.refused = "the sequence has no residue for some of its numbers"
            segments.append(seg)
        c_missing = [n for n in range(last + 1, offset + len(seq) + 1)][:max_residues_per_end]
        if c_missing:
            segments.append(Segment(f"{ch.name}:{c_missing[0]}-{c_missing[-1]}", ch.name, "c_end", last, 1,
                                    [(n, name_at(n)) for n in c_missing]))
    return segments, chains


# ---------------------------------------------------------------------- coot steps
def _coot(step: str, model: Path, map_path: Path, out: Path | None, workdir: Path, log: Path, *,
          plan: Path | None = None, seed: int | None = None, timeout: float = 3600, result: Path | None = None) -> dict:
    """Run one step of :mod:`locscale.building.coot_tool` in its own process; its JSON result."""
    result = result if result is not None else out.with_suffix(".json")
    cmd = [sys.executable, "-m", "locscale.building.coot_tool", step, "--model", str(model), "--map", str(map_path),
           "--json", str(result)]
    if out is not None:
        cmd += ["--out", str(out)]
    if plan is not None:
        cmd += ["--plan", str(plan)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    env = tool_environment()
    env["COOT_N_THREADS"] = "1"
    with open(log, "a") as fh:
        fh.write(f"# {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=workdir, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    if proc.returncode != 0 or not result.exists():
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise RuntimeError(f"coot building step {step!r} failed (exit status {proc.returncode}); last lines of "
                           f"{log}:\n{tail}")
    if out is not None:
        _clean(out)
    return json.loads(result.read_text())


#: runs of a coot step that refines, at most, until one output repeats (see :func:`_coot_agreed`)
MAX_REFINE_RUNS = 4


def _coot_agreed(step: str, model: Path, map_path: Path, out: Path, workdir: Path, log: Path, **kw) -> dict:
    """Run a coot step until two runs give the same model, byte for byte; that model and its result.

    For ``fill``: ``fill_partial_residues`` may refine the side chains it completes, and coot's refinement is not
    reproducible (:mod:`locscale.building.coot_tool`). The outcome two runs agree on is the likely one; the result says
    how many runs it took (``runs``) and ``agreed`` False if none of :data:`MAX_REFINE_RUNS` agreed (then the
    first is used). Measured with side chains to complete (tests/test_building.py, ten aromatic side chains
    cut back to CB on the EMD-3488 crop): 20 of 20 single runs gave the same file, under load too, so the second
    run normally agrees with the first and the guard costs one extra run of a fast step."""
    outputs: list[tuple[bytes, dict]] = []
    for k in range(MAX_REFINE_RUNS):
        trial_out = out.with_name(f"{out.stem}.run{k}{out.suffix}")
        result = _coot(step, model, map_path, trial_out, workdir, log, **kw)
        data = trial_out.read_bytes()
        for earlier, earlier_result in outputs:
            if earlier == data:
                out.write_bytes(data)
                return {**earlier_result, "runs": k + 1, "agreed": True}
        outputs.append((data, result))
    out.write_bytes(outputs[0][0])
    return {**outputs[0][1], "runs": MAX_REFINE_RUNS, "agreed": False}


def _clean(path: Path) -> None:
    """Rewrite a coot-written model with gemmi, without the placeholder atoms coot leaves (no name, element X, at
    the origin; measured after ``add_terminal_residue_directly`` on a model coot had written: coot then fails to
    read its own file), so that the next step reads a clean file."""
    st = gemmi.read_structure(str(path))
    for ch in st[0]:
        for res in ch:
            for i in range(len(res) - 1, -1, -1):
                if not res[i].name.strip() or res[i].element == gemmi.Element("X"):
                    del res[i]
    st.remove_empty_chains()
    st.setup_entities()
    with atomic_output(path) as tmp:
        st.make_mmcif_document().write_file(str(tmp))


def _built_by_segment(traced: dict) -> dict[str, tuple[list[int], str]]:
    """{segment id: (residue numbers built, why the trace stopped early or "")}, the halves of a gap joined."""
    out: dict[str, tuple[list[int], str]] = {}
    for entry in traced["segments"]:
        sid = entry["id"].split("/")[0]
        built, refused = out.get(sid, ([], ""))
        out[sid] = (sorted(built + [int(n) for n in entry["built"]]), "; ".join(r for r in (refused, entry["refused"])
                                                                               if r))
    return out


def _link_gaps(path: Path, segments: list[Segment], built: dict) -> None:
    """Declare the peptide bond that closes each fully traced gap (its last new residue's C to the next residue's
    N) as a TRANS link in the model file: servalcat (gemmi's topology) links consecutive residues only when they
    are already bonded by distance, so without it the new chain stays open at its far end (measured: C–N 2.9 Å
    after refinement; 1.5 Å with the link, 5 cycles)."""
    st = gemmi.read_structure(str(path))
    for seg in segments:
        numbers = built.get(seg.id, ([], ""))[0]
        if seg.kind != "gap" or len(numbers) != len(seg.residues):
            continue
        chain = st[0][seg.chain]
        last, nxt = chain[str(max(numbers))], chain[str(seg.next_residue)]
        if not last or not nxt:
            continue
        con = gemmi.Connection()
        con.name = f"gap_{seg.chain}_{seg.next_residue}"
        con.type = gemmi.ConnectionType.Covale
        con.link_id = "TRANS"
        con.partner1 = gemmi.AtomAddress(seg.chain, last[0].seqid, last[0].name, "C")
        con.partner2 = gemmi.AtomAddress(seg.chain, nxt[0].seqid, nxt[0].name, "N")
        st.connections.append(con)
    st.setup_entities()
    with atomic_output(path) as tmp:
        st.make_mmcif_document().write_file(str(tmp))


def _servalcat_refine(model: Path, map_path: Path, resolution: float, monlib: Path, ncycle: int, workdir: Path,
                      log: Path, timeout: float = 3600) -> Path:
    """Coordinates refined by servalcat (``refine_spa_norefmac --adp fix``, restrained by `monlib`, `ncycle`
    cycles, one thread): reproducible, unlike coot's refinement (see :mod:`locscale.building.coot_tool`). Symmetry
    records of the model (MTRIX, ``_struct_ncs_oper``) are ignored (measured on the 5NI1 phantom: servalcat
    stopped with "Map correlation is too small" on the operators 5NI1 carries); the built model keeps them.
    A map located by the ORIGIN field alone is handed over located by nstart (servalcat reads nstart only:
    :func:`locscale.engines.servalcat.servalcat_frame`)."""
    from ..engines.servalcat import servalcat_frame, write_shifted_model

    workdir.mkdir(parents=True, exist_ok=True)
    (map_path,), offset = servalcat_frame([map_path], workdir)
    if offset is not None:
        model = write_shifted_model(model, -offset, workdir / "model_in_servalcat_frame.cif")
    cmd = [sys.executable, "-m", "servalcat", "refine_spa_norefmac", "--model", str(model), "--map", str(map_path),
           "-d", f"{float(resolution):g}", "--adp", "fix", "--hydrogen", "no", "--monlib", str(monlib),
           "--ncycle", str(int(ncycle)), "--ignore_symmetry", "-o", "refined"]
    try:
        run_logged(cmd, workdir, log, threads=1, timeout=timeout)  # one thread: reproducible
    except RuntimeError as err:
        raise RuntimeError(f"servalcat refinement of the built residues failed: {err}") from None
    out = workdir / "refined.mmcif"
    if not out.exists():
        raise RuntimeError(f"servalcat refinement of the built residues wrote no {out.name} in {workdir} (see {log})")
    if offset is not None:
        out = write_shifted_model(out, offset, workdir / "refined_map_frame.mmcif")
    return out


def coot_available() -> bool:
    return importlib.util.find_spec("coot_headless_api") is not None


# ---------------------------------------------------------------------- choice, merge, trim
def _rows_by_residue(result: dict) -> dict:
    return {(r["chain"], int(r["resnum"])): r for r in result["residues"]}


def _gap_closed(st: gemmi.Structure, seg: Segment, built: list[int]) -> bool:
    if seg.kind != "gap" or not built:
        return True
    chain = st[0][seg.chain]
    last = chain[str(max(built))][0] if chain[str(max(built))] else None
    nxt = chain[str(seg.next_residue)][0] if chain[str(seg.next_residue)] else None
    if last is None or nxt is None or last.find_atom("C", "*") is None or nxt.find_atom("N", "*") is None:
        return False
    return last.find_atom("C", "*").pos.dist(nxt.find_atom("N", "*").pos) <= CLOSED_C_N


def score_trial(seg: Segment, built: list[int], rows: dict, closed: bool) -> float:
    """The documented score of one trial of a segment (module docstring); -inf when nothing was built."""
    if not built:
        return float("-inf")
    cc = [rows.get((seg.chain, n), {}).get("cc", float("nan")) for n in built]
    cc = [0.0 if not np.isfinite(c) else c for c in cc]
    p = [rows.get((seg.chain, n), {}).get("rama_probability", float("nan")) for n in built]
    outliers = sum(1 for v in p if np.isfinite(v) and v < RAMA_OUTLIER_P)
    return float(np.mean(cc)) - OUTLIER_PENALTY * outliers / len(built) - (0.0 if closed else OPEN_GAP_PENALTY)


def trim_residues(seg: Segment, built: list[int], rows: dict, min_fit: float) -> dict[int, str]:
    """{residue number: reason} of the new residues to remove (module docstring, step 5)."""
    trimmed: dict[int, str] = {}
    order = [n for n, _ in seg.residues if n in built]  # build order: outwards from the anchor
    for i, n in enumerate(order):
        cc = rows.get((seg.chain, n), {}).get("cc", float("nan"))
        if not np.isfinite(cc) or cc < min_fit:
            trimmed[n] = f"CC {cc:.3f} below min_fit {min_fit:g}"
            if seg.kind != "gap":
                for m in order[i + 1:]:
                    trimmed.setdefault(m, f"beyond residue {n} (trimmed) at the chain end")
                break
    return trimmed


def merge_window(seg: Segment, kept: list[int], planned: set[int]) -> set[int]:
    """Residue numbers the built model takes from the trial chosen for `seg`: its kept new residues, and the
    residues within two of them and of its anchor that no segment plans (the anchors and their neighbours, which
    the trial's refinement moved). Never a residue another segment plans, nor one this segment trimmed or did not
    build: each segment decides only its own residues (adjacent segments, e.g. a gap split by a residue kept in
    an earlier completion, would otherwise put back what the other trimmed)."""
    lo, hi = min(kept + [seg.anchor]), max(kept + [seg.anchor])
    return ({n for n in range(lo - 2, hi + 3)} - set(planned)) | set(kept)


def _replace_residues(target: gemmi.Chain, source: gemmi.Chain, numbers: set[int]) -> None:
    """Put `source`'s residues with these numbers into `target` (replacing any there), in residue-number order."""
    keep = [target[i].clone() for i in range(len(target)) if target[i].seqid.num not in numbers]
    new = [r.clone() for r in source if r.seqid.num in numbers]
    residues = sorted(keep + new, key=lambda r: (r.het_flag == "H", r.seqid.num, r.seqid.icode))
    for i in range(len(target) - 1, -1, -1):
        del target[i]
    for r in residues:
        target.add_residue(r)


# ---------------------------------------------------------------------- the whole completion
def complete_model(model, map_path, sequence, workdir, resolution: float, *, trials: int = DEFAULTS["trials"],
                   seed: int = DEFAULTS["seed"], min_fit: float = DEFAULTS["min_fit"],
                   max_residues_per_end: int = DEFAULTS["max_residues_per_end"],
                   max_gap_residues: int = DEFAULTS["max_gap_residues"],
                   refine_cycles: int = DEFAULTS["refine_cycles"], monlib=None, sequence_model=None, output=None,
                   timeout: float = 3600) -> tuple[Path, dict, pd.DataFrame]:
    """Complete `model` against `map_path` (module docstring) in `workdir`.

    sequence : FASTA file, or None for the entity sequences of `sequence_model` (default: the model's own).
    resolution : the map's resolution (Å), for servalcat's refinement of the new residues.
    monlib : CCP4 monomer library for that refinement (None: ``$CLIBD_MON``, else coot-headless-api's).
    output : the built model's path (default ``workdir/built_model.cif``).

    Returns (built model path, report dict, per-residue table with :data:`TABLE_COLUMNS`). The report has
    ``residues_built`` (new residues kept), ``residues_trimmed``, ``built_fit_mean`` (mean CC of the kept new
    residues; NaN if none), ``side_chains_completed``, ``segments`` (each with kind, status, reason, chosen trial
    and scores), ``refused`` (segments not built, with the reason) and ``seconds``.
    """
    from ..models import read_model, write_model

    t0 = time.perf_counter()
    if int(trials) < 1:
        raise LocScaleInputError(f"model_completion.coot.trials = {trials}", "use at least 1 trial")
    if not coot_available() or importlib.util.find_spec("servalcat") is None:
        raise LocScaleInputError("coot-headless-api or servalcat is not installed (model_completion.mode: coot "
                                 "needs both)", "install this project with its validation extra: "
                                 "pip install -e '.[validation]'")
    from ..limits import check_resolution
    from ..tools.restraints import resolve_monlib

    resolution = check_resolution(resolution)
    monlib = resolve_monlib(monlib)
    model, map_path = Path(model).absolute(), Path(map_path).absolute()
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    output = Path(output) if output is not None else workdir / "built_model.cif"
    log = workdir / "coot_building.log"
    log.write_text("")
    structure = read_model(model)
    sequences = chain_sequences(structure, sequence, sequence_model)
    if not sequences:
        raise LocScaleInputError("no sequence for any protein chain of the model",
                                 "give model_completion.sequence (a FASTA file), or a model with its sequence "
                                 "(mmCIF entity_poly_seq or PDB SEQRES)", sequence or model)
    segments, chains = plan_segments(structure, sequences, max_residues_per_end=max_residues_per_end,
                                     max_gap_residues=max_gap_residues, sequence_path=sequence)
    todo = [s for s in segments if not s.refused]
    plan_path = workdir / "plan.json"
    plan_path.write_text(json.dumps({"segments": [e for s in todo for e in s.plan()]}, indent=1))
    seconds = {}
    t = time.perf_counter()
    filled_path = workdir / "filled.cif"
    fill = _coot_agreed("fill", model, map_path, filled_path, workdir, log, timeout=timeout)
    seconds["fill"] = time.perf_counter() - t
    filled = gemmi.read_structure(str(filled_path))
    results = []
    t = time.perf_counter()
    for k in range(int(trials) if todo else 0):
        trace_path = workdir / f"trial_{k}_trace.cif"
        traced = _coot("trace", filled_path, map_path, trace_path, workdir, log, plan=plan_path, seed=int(seed) + k,
                       timeout=timeout)
        _link_gaps(trace_path, todo, _built_by_segment(traced))
        refined_path = _servalcat_refine(trace_path, map_path, resolution, monlib, int(refine_cycles),
                                         workdir / f"trial_{k}_servalcat", log, timeout=timeout)
        scored = _coot("score", refined_path, map_path, None, workdir, log, plan=plan_path, timeout=timeout,
                       result=workdir / f"trial_{k}_score.json")
        results.append((_built_by_segment(traced), scored, gemmi.read_structure(str(refined_path))))
    seconds["trials"] = time.perf_counter() - t

    # the output: the input model (its metadata, B-factors), with coot's completed side chains and the chosen trials
    final = structure.clone()
    for ch in final[0]:
        if ch.name in [c.name for c in filled[0]]:
            _replace_residues(ch, filled[0][ch.name], {int(r.seqid.num) for r in ch})
    b_values = [a.b_iso for ch in structure[0] for r in ch for a in r]
    b_new = float(np.median(b_values)) if b_values else 30.0
    rows, kept_cc = [], []
    n_built = n_trimmed = 0
    planned: dict[str, set[int]] = {}
    for seg in segments:
        planned.setdefault(seg.chain, set()).update(n for n, _ in seg.residues)
    for seg in segments:
        seg_record = {"id": seg.id, "kind": seg.kind, "chain": seg.chain, "residues": len(seg.residues)}
        if seg.refused:
            seg.trials = []
            seg_record.update(status="refused", reason=seg.refused)
            rows += [_row(seg, n, name, "refused", seg.refused) for n, name in seg.residues]
            seg.record = seg_record
            continue
        scores = []
        for k, (traced, refined, st) in enumerate(results):
            built, refused = traced[seg.id]
            by_res = _rows_by_residue(refined)
            closed = _gap_closed(st, seg, built)
            scores.append({"trial": k, "seed": int(seed) + k, "built": len(built), "closed": closed,
                           "refused": refused, "score": score_trial(seg, built, by_res, closed)})
        best = max(range(len(scores)), key=lambda k: (scores[k]["score"], -k))
        traced, refined, st = results[best]
        built = traced[seg.id][0]
        by_res = _rows_by_residue(refined)
        trimmed = trim_residues(seg, built, by_res, min_fit)
        kept = [n for n in built if n not in trimmed]
        if kept:
            _replace_residues(final[0][seg.chain], st[0][seg.chain], merge_window(seg, kept, planned[seg.chain]))
        n_built += len(kept)
        n_trimmed += len(trimmed)
        for n, name in seg.residues:
            r = by_res.get((seg.chain, n), {})
            if n in kept:
                kept_cc.append(r.get("cc", float("nan")))
                rows.append(_row(seg, n, name, "built", "", best, r))
            elif n in trimmed:
                rows.append(_row(seg, n, name, "trimmed", trimmed[n], best, r))
            else:
                reason = traced[seg.id][1]
                rows.append(_row(seg, n, name, "refused", reason or "not built"))
        status = "built" if kept else ("trimmed" if built else "refused")
        seg_record.update(status=status, trial=best, scores=scores, built=len(kept), trimmed=len(trimmed),
                          closed=scores[best]["closed"] if seg.kind == "gap" else None)
        seg.record = seg_record
    _restore_b(final, structure, b_new)
    write_model(final, output)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    report = {
        "mode": "coot",
        "model": str(model), "map": str(map_path), "sequence": None if sequence is None else str(sequence),
        "sequence_model": None if sequence is not None or sequence_model is None else str(sequence_model),
        "parameters": {"trials": int(trials), "seed": int(seed), "min_fit": float(min_fit),
                       "max_residues_per_end": int(max_residues_per_end),
                       "max_gap_residues": int(max_gap_residues), "refine_cycles": int(refine_cycles),
                       "resolution": float(resolution), "monlib": str(monlib)},
        "chains": chains,
        "residues_built": int(n_built),
        "residues_trimmed": int(n_trimmed),
        "built_fit_mean": float(np.nanmean(kept_cc)) if kept_cc else float("nan"),
        "side_chains_completed": len(fill.get("partial_residues", [])),
        "side_chains_completed_residues": fill.get("partial_residues", []),
        "segments": [s.record for s in segments],
        "refused": [{"id": s.id, "reason": s.record.get("reason", "")} for s in segments
                    if s.record["status"] == "refused"],
        "built_model": str(output),
    }
    seconds["total"] = time.perf_counter() - t0
    report["seconds"] = seconds
    return output, report, table


def _restore_b(final: gemmi.Structure, original: gemmi.Structure, b_new: float) -> None:
    """B-factors: each atom's input B where the input had the atom, the residue's mean input B for atoms coot
    added to an input residue (completed side chains), `b_new` (the input's median B) for new residues; coot
    writes its own default B otherwise."""
    atoms, residues = {}, {}
    for ch in original[0]:
        for r in ch:
            key = (ch.name, r.seqid.num, r.seqid.icode)
            residues[key] = float(np.mean([a.b_iso for a in r])) if len(r) else b_new
            for a in r:
                atoms[key + (a.name, a.altloc)] = a.b_iso
    for ch in final[0]:
        for r in ch:
            key = (ch.name, r.seqid.num, r.seqid.icode)
            for a in r:
                a.b_iso = atoms.get(key + (a.name, a.altloc), residues.get(key, b_new))


def _row(seg: Segment, n: int, name: str, status: str, reason: str, trial=None, r: dict | None = None) -> dict:
    r = r or {}
    ca = r.get("ca") or [float("nan")] * 3
    return {"chain": seg.chain, "resnum": n, "resname": name, "segment": seg.id, "kind": seg.kind,
            "status": status, "reason": reason, "trial": trial if trial is not None else -1,
            "cc": r.get("cc", float("nan")), "rama_probability": r.get("rama_probability", float("nan")),
            "ca_x": ca[0], "ca_y": ca[1], "ca_z": ca[2]}


def write_outputs(report: dict, table: pd.DataFrame, json_path, tsv_path) -> None:
    """The completion record (JSON, with provenance) and the per-residue table (TSV), atomically."""
    from ..records import write_json

    write_json(json_path, report)
    with atomic_output(tsv_path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
