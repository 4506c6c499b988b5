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
   ``max_residues_per_end`` residues, nearest first) is a segment. Refused with the reason: a gap longer than
   ``max_gap_residues``, or whose anchors are farther apart than its residues can span (3.8 Å per peptide,
   :data:`CA_STEP`).
3. **Trials** (:func:`_run_trial`): ``trials`` traces of every segment, trial t with seed ``seed + t`` (coot's
   random φ/ψ trials, seeded), a chain end outwards from its anchor, a gap from both of its anchors; a gap's two
   traces are joined where they meet (:func:`choose_junction`). The new residues are refined with servalcat, every
   atom of the model held but the peptide atoms next to them (coot's refinement is not reproducible, see
   :mod:`locscale.building.coot_tool`); their geometry is repaired (Ramachandran peptide flips, then servalcat
   again; library rotamers for side chains that overlap or are rotamer outliers); coot measures every new residue
   (CC, Q-score, Ramachandran and rotamer probability, bad overlaps) and scans each segment's register.
4. **Judgement** per segment and trial (:func:`judge_segment`): the residues with CC below ``min_fit`` or Q-score
   below ``min_q_score`` go (at a chain end with every residue beyond); a segment whose remaining residues' own
   register does not beat every other shift of the sequence by :data:`REGISTER_MARGIN` goes whole
   (:func:`register_check`); of the rest, Ramachandran and rotamer outliers, residues that make their anchor an
   outlier, and residues in bad overlaps go (:func:`judge_residues`). Per segment the trial with the highest sum
   of its kept residues' Q-scores is chosen (ties: the lower trial number).
5. **Merge and check** (:func:`merge`): the built model takes from each segment's trial only its kept residues and
   the peptide atoms next to them; everything else is the input model's, atom for atom, except the side chains coot
   completed (step 2: kept only when they add no bad overlap and are no rotamer outlier,
   :func:`_check_side_chains`). The merged model is measured again and judged the same way (segments chosen from
   different trials may meet) until nothing more goes.
6. The built model (the input model with the side chains completed and the kept residues), a JSON record and a
   per-residue table. The same inputs give the same files, byte for byte (tested).
"""

from __future__ import annotations

import importlib.util
import json
import math
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
#: a gap's two traces are joined by a peptide link when their junction's C–N distance is at most this (Å)
JUNCTION_LINK_MAX = 3.0
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
#: Default threshold on a new residue's Q-score (coot ``get_q_score``, Pintilie et al. 2020; schema
#: model_completion.coot.min_q_score), calibrated on the phantoms of benchmarks/bench_building.py (see there).
MIN_Q_SCORE = DEFAULTS["min_q_score"]
#: the register scan keeps a segment when its own register's mean CC beats every other shift by at least this
REGISTER_MARGIN = 0.02
#: the register shifts scanned (residue n takes the sequence's type of n + k)
REGISTER_SHIFTS = (-3, -2, -1, 0, 1, 2, 3)
#: segments with fewer residues are not judged by the register scan
REGISTER_MIN_RESIDUES = 3
#: rounds of the check of the merged model (each removes what the previous left with a problem)
FINAL_CHECK_ROUNDS = 3

TABLE_COLUMNS = ["chain", "resnum", "resname", "segment", "kind", "status", "reason", "trial", "cc", "q_score",
                 "rama_probability", "rotamer_probability", "overlaps", "ca_x", "ca_y", "ca_z"]


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

    def anchors(self) -> list[int]:
        """The model residues the segment is built from: its anchor, and for a gap the residue after it."""
        return [self.anchor] + ([self.next_residue] if self.kind == "gap" else [])

    def plan_entry(self, backward: bool = False) -> dict:
        """The trace plan's entry: from the anchor outwards; a gap from its N-terminal anchor, or with `backward`
        from the residue after it towards lower numbers."""
        if backward:
            return {"id": self.id, "chain": self.chain, "anchor": self.next_residue, "direction": -1,
                    "residues": [[n, r] for n, r in reversed(self.residues)]}
        return {"id": self.id, "chain": self.chain, "anchor": self.anchor, "direction": self.direction,
                "residues": [[n, r] for n, r in self.residues]}


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
            info = gemmi.find_tabulated_residue(res.name)
            if info is not None and info.is_amino_acid():
                res.het_flag = "A"  # coot writes the residues it adds as HETATM
        _replace_residues(ch, ch, set())  # residue-number order
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


def _link_pairs(path: Path, pairs: list[tuple[str, int, int]]) -> None:
    """Declare the peptide bond C(n)–N(m) of each (chain, n, m) as a TRANS link in the model file: servalcat
    (gemmi's topology) links consecutive residues only when they are already bonded by distance, so without it a
    gap's junction stays open (measured: C–N 2.9 Å after refinement; 1.5 Å with the link, 5 cycles)."""
    st = gemmi.read_structure(str(path))
    for chain_name, n, m in pairs:
        chain = st[0][chain_name]
        first, second = chain[str(n)], chain[str(m)]
        if not first or not second:
            continue
        con = gemmi.Connection()
        con.name = f"peptide_{chain_name}_{n}_{m}"
        con.type = gemmi.ConnectionType.Covale
        con.link_id = "TRANS"
        con.partner1 = gemmi.AtomAddress(chain_name, first[0].seqid, first[0].name, "C")
        con.partner2 = gemmi.AtomAddress(chain_name, second[0].seqid, second[0].name, "N")
        st.connections.append(con)
    st.setup_entities()
    with atomic_output(path) as tmp:
        st.make_mmcif_document().write_file(str(tmp))


def _servalcat_refine(model: Path, map_path: Path, resolution: float, monlib: Path, ncycle: int, workdir: Path,
                      log: Path, moving: list[str], timeout: float = 3600) -> Path:
    """The coordinates of the residues `moving` (gemmi selections, e.g. ``//A/57-63``) refined by servalcat
    (``refine_spa_norefmac --adp fix``, restrained by `monlib`, `ncycle` cycles, one thread), every other atom held
    where it is (servalcat's ``atom_selection.xyz.include``): reproducible, unlike coot's refinement (see
    :mod:`locscale.building.coot_tool`), and the model's kept residues stay put. Symmetry records of the model
    (MTRIX, ``_struct_ncs_oper``) are ignored (measured on the 5NI1 phantom: servalcat stopped with "Map correlation
    is too small" on the operators 5NI1 carries); the built model keeps them. A map located by the ORIGIN field
    alone is handed over located by nstart (servalcat reads nstart only:
    :func:`locscale.engines.servalcat.servalcat_frame`)."""
    from ..engines.servalcat import servalcat_frame, write_shifted_model

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "moving.yaml"
    config.write_text("refine:\n  atom_selection:\n    xyz:\n      include: ["
                      + ", ".join(json.dumps(s) for s in moving) + "]\n")
    (map_path,), offset = servalcat_frame([map_path], workdir)
    if offset is not None:
        model = write_shifted_model(model, -offset, workdir / "model_in_servalcat_frame.cif")
    cmd = [sys.executable, "-m", "servalcat", "refine_spa_norefmac", "--model", str(model), "--map", str(map_path),
           "-d", f"{float(resolution):g}", "--adp", "fix", "--hydrogen", "no", "--monlib", str(monlib),
           "--ncycle", str(int(ncycle)), "--ignore_symmetry", "--config", str(config), "-o", "refined"]
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


# ---------------------------------------------------------------------- one trial
def _atom_pos(st: gemmi.Structure, chain: str, n: int, atom: str):
    res = st[0][chain][str(n)] if st[0].find_chain(chain) else None
    if not res:
        return None
    a = res[0].find_atom(atom, "*")
    return None if a is None else a.pos


def choose_junction(seg: Segment, forward: list[int], backward: list[int], fwd_st: gemmi.Structure,
                    bwd_st: gemmi.Structure) -> tuple[list[int], list[int], float]:
    """Where a gap's two traces meet: (residues taken from the trace from the N-terminal anchor, in build order;
    residues taken from the trace from the C-terminal anchor, in build order; C–N distance at the junction, Å).

    The junction j (the first part ends at residue j, the second starts at j + 1) is the one whose C(j) of the
    first trace lies closest to N(j + 1) of the second (a peptide bond is 1.33 Å), among the j both traces reach
    (the anchors count as reached); ties: nearer the middle, then the lower j. If the traces do not overlap, each
    keeps what it built and the middle stays open (distance inf)."""
    a, b = seg.anchor, seg.next_residue
    reach_f = a + len(forward)  # forward holds a+1 ... a+len
    reach_b = b - len(backward)  # backward holds b-1 ... b-len
    candidates = []
    mid = 0.5 * (a + b)
    for j in range(max(a, reach_b - 1), min(reach_f, b - 1) + 1):
        c = _atom_pos(fwd_st, seg.chain, j, "C")
        nn = _atom_pos(bwd_st, seg.chain, j + 1, "N")
        if c is None or nn is None:
            continue
        candidates.append((round(c.dist(nn), 3), abs(j - mid), j))
    if not candidates:
        return list(forward), list(backward), float("inf")
    d, _, j = min(candidates)
    return [n for n in forward if n <= j], [n for n in backward if n > j], float(d)


@dataclass
class Trial:
    """One trial: its model (traced, refined, repaired, refined) and what was measured on it."""

    number: int
    seed: int
    model: Path
    structure: gemmi.Structure
    parts: dict[str, list[list[int]]]  # segment id -> the built residues of each trace part, in build order
    junctions: dict[str, float]
    rows: dict[tuple[str, int], dict]
    register: dict[str, dict]
    repairs: dict
    stopped: dict[str, str]


def _with(plan: Path, **items) -> Path:
    """A copy of the JSON plan `plan` with `items` added (``NAME.ITEM.json`` beside it)."""
    tag = "_".join(f"{k}-{'-'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in items.items())
    out = plan.with_name(f"{plan.stem}.{tag}.json")
    out.write_text(json.dumps({**json.loads(plan.read_text()), **items}, indent=1))
    return out


#: atoms of a model residue next to a new one that refinement may move: the peptide unit they share (the model
#: residue before a new one gives its C and O, the one after it its N); its CA and side chain stay put
LINK_ATOMS = {-1: ("C", "O"), 1: ("N",)}


def linked_atoms(numbers: list[int], model_numbers: set[int]) -> list[tuple[int, tuple[str, ...]]]:
    """(model residue, its atoms) in the peptide units the new residues `numbers` share with model residues."""
    new = set(numbers)
    out = []
    for n in sorted(new):
        for side, atoms in LINK_ATOMS.items():
            m = n + side
            if m not in new and m in model_numbers:
                out.append((m, atoms))
    return out


def _moving(chain: str, numbers: list[int], model_numbers: set[int]) -> list[str]:
    """Selections of what refinement moves: the new residues (runs of consecutive numbers) and the peptide atoms
    of the model residues next to them (:data:`LINK_ATOMS`)."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ([f"//{chain}/{r[0]}-{r[-1]}" for r in runs]
            + [f"//{chain}/{m}/{','.join(atoms)}" for m, atoms in linked_atoms(numbers, model_numbers)])


def _run_trial(k: int, seed: int, todo: list[Segment], filled_path: Path, map_path: Path, resolution: float,
               monlib: Path, refine_cycles: int, sequences: dict, offsets: dict, workdir: Path, log: Path,
               timeout: float) -> Trial:
    """Trace every segment (gaps from both anchors), join each gap's traces, refine the new residues (every atom of
    the model held but the peptide atoms next to them), repair their geometry, refine again, and measure every
    residue."""
    gaps = [s for s in todo if s.kind == "gap"]
    plan_f = workdir / "plan_forward.json"
    plan_b = workdir / "plan_backward.json"
    plan_f.write_text(json.dumps({"segments": [s.plan_entry(backward=False) for s in todo]}, indent=1))
    plan_b.write_text(json.dumps({"segments": [s.plan_entry(backward=True) for s in gaps]}, indent=1))
    fwd_path = workdir / f"trial_{k}_forward.cif"
    traced_f = _built_by_segment(_coot("trace", filled_path, map_path, fwd_path, workdir, log, plan=plan_f,
                                       seed=seed, timeout=timeout))
    fwd_st = gemmi.read_structure(str(fwd_path))
    traced_b, bwd_st = {}, None
    if gaps:
        bwd_path = workdir / f"trial_{k}_backward.cif"
        traced_b = _built_by_segment(_coot("trace", filled_path, map_path, bwd_path, workdir, log, plan=plan_b,
                                           seed=seed, timeout=timeout))
        bwd_st = gemmi.read_structure(str(bwd_path))
    joined = fwd_st.clone()
    filled = gemmi.read_structure(str(filled_path))
    model_numbers = {ch.name: {int(r.seqid.num) for r in ch} for ch in filled[0]}
    parts, junctions, links, moving, stopped = {}, {}, [], [], {}
    for seg in todo:
        forward, why = traced_f.get(seg.id, ([], ""))
        forward = [n for n, _ in seg.residues if n in forward]  # build order
        if seg.kind != "gap":
            parts[seg.id] = [forward]
            stopped[seg.id] = why
        else:
            backward, why_b = traced_b.get(seg.id, ([], ""))
            backward = [n for n, _ in reversed(seg.residues) if n in backward]
            first, second, d = choose_junction(seg, forward, backward, fwd_st, bwd_st)
            parts[seg.id] = [first, second]
            junctions[seg.id] = d
            stopped[seg.id] = "; ".join(w for w in (why, why_b) if w)
            take = set(second) | ({seg.next_residue} if second else set())
            chain = joined[0][seg.chain]
            for i in range(len(chain) - 1, -1, -1):  # the first trace's residues beyond the junction
                if chain[i].seqid.num in {n for n, _ in seg.residues} - set(first):
                    del chain[i]
            _replace_residues(chain, bwd_st[0][seg.chain], take)
            if first and second and d <= JUNCTION_LINK_MAX:
                links.append((seg.chain, first[-1], second[-1]))
            elif first and not second and first[-1] == seg.next_residue - 1:
                links.append((seg.chain, first[-1], seg.next_residue))
            elif second and not first and second[-1] == seg.anchor + 1:
                links.append((seg.chain, seg.anchor, second[-1]))
        built = [n for p in parts[seg.id] for n in p]
        if built:
            moving += _moving(seg.chain, built, model_numbers[seg.chain])
        # the anchors as they are in the model (coot's trace nudges their C, O or N by up to 0.4 Å): refinement
        # moves only their atoms in the peptide unit shared with a new residue, from where they are
        _replace_residues(joined[0][seg.chain], filled[0][seg.chain], set(seg.anchors()))
    joined_path = workdir / f"trial_{k}_joined.cif"
    joined.setup_entities()
    with atomic_output(joined_path) as tmp:
        joined.make_mmcif_document().write_file(str(tmp))
    _link_pairs(joined_path, links)
    plan_r = {"segments": []}
    for seg in todo:
        built = sorted(n for p in parts[seg.id] for n in p)
        anchors = [seg.anchor] + ([seg.next_residue] if seg.kind == "gap" else [])
        window = range(min(built + anchors) - max(REGISTER_SHIFTS), max(built + anchors) - min(REGISTER_SHIFTS) + 1)
        seq = sequences[seg.chain]
        plan_r["segments"].append({"id": seg.id, "chain": seg.chain, "built": built, "anchors": anchors,
                                   "shifts": list(REGISTER_SHIFTS),
                                   "sequence": {str(n): _three(seq[n - offsets[seg.chain] - 1]) for n in window
                                                if 0 <= n - offsets[seg.chain] - 1 < len(seq)}})
    plan_r_path = workdir / f"trial_{k}_segments.json"
    plan_r_path.write_text(json.dumps(plan_r, indent=1))
    model, repairs = joined_path, {"flips": [], "rotamers": []}
    if moving:
        model = _servalcat_refine(joined_path, map_path, resolution, monlib, refine_cycles,
                                  workdir / f"trial_{k}_servalcat", log, moving, timeout=timeout)
        flipped = workdir / f"trial_{k}_flipped.cif"
        repairs = _coot("repair", model, map_path, flipped, workdir, log, plan=_with(plan_r_path, repair=["flips"]),
                        timeout=timeout)
        _link_pairs(flipped, links)
        model = _servalcat_refine(flipped, map_path, resolution, monlib, refine_cycles,
                                  workdir / f"trial_{k}_servalcat_flipped", log, moving, timeout=timeout)
        repaired = workdir / f"trial_{k}_repaired.cif"  # library rotamers: ideal geometry, no refinement after
        rotamers = _coot("repair", model, map_path, repaired, workdir, log,
                         plan=_with(plan_r_path, repair=["rotamers"]), timeout=timeout)
        repairs["rotamers"] = rotamers["rotamers"]
        model = repaired
    score_plan = workdir / f"trial_{k}_score_plan.json"
    score_plan.write_text(json.dumps({"score": [[s["chain"], n] for s in plan_r["segments"]
                                                for n in s["built"] + s["anchors"]]}))
    scored = _coot("score", model, map_path, None, workdir, log, plan=score_plan, timeout=timeout,
                   result=workdir / f"trial_{k}_score.json")
    register = _coot("register", model, map_path, None, workdir, log, plan=plan_r_path, timeout=timeout,
                     result=workdir / f"trial_{k}_register.json")
    return Trial(k, seed, model, gemmi.read_structure(str(model)), parts, junctions, _rows_by_residue(scored),
                 {s["id"]: s for s in register["segments"]}, repairs, stopped)


# ---------------------------------------------------------------------- acceptance, choice, merge
def _rows_by_residue(result: dict) -> dict:
    return {(r["chain"], int(r["resnum"])): r for r in result["residues"]}


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def residue_problems(row: dict, *, min_fit: float, min_q_score: float) -> tuple[list[str], list[str]]:
    """Why a new residue cannot stay, in two kinds (both empty: it can): (fit: CC or Q-score below its threshold,
    so the density does not support it -- a trace does not continue past such a residue; geometry: Ramachandran
    or rotamer outlier -- the residue alone goes). Overlaps are judged with their partners
    (:func:`judge_residues`)."""
    fit, geometry = [], []
    cc, q = row.get("cc"), row.get("q_score")
    if not _finite(cc) or cc < min_fit:
        fit.append(f"CC {cc:.3f} below min_fit {min_fit:g}" if _finite(cc) else "no CC")
    if not _finite(q) or q < min_q_score:
        fit.append(f"Q-score {q:.3f} below min_q_score {min_q_score:g}" if _finite(q) else "no Q-score")
    p = row.get("rama_probability")
    if _finite(p) and p < RAMA_OUTLIER_P:
        geometry.append(f"Ramachandran outlier (p {p:.4f})")
    rot = row.get("rotamer_probability")
    if _finite(rot) and rot <= 0.0:
        geometry.append("rotamer outlier")
    return fit, geometry


def judge_residues(chain: str, parts: list[list[int]], anchors: list[int], rows: dict, baseline: dict, *,
                   min_fit: float, min_q_score: float, cascade: bool) -> dict[int, str]:
    """{residue: reason} of the new residues of one segment that go (the rest stay), in this order:

    1. fit (:func:`residue_problems`): the residue, and with `cascade` (a chain end) every residue its trace built
       after it (so also after 2. and 3.: nothing at a chain end stays beyond a residue that went). In a gap the
       residues on either side stay anchored and are judged each on their own (β-galactosidase phantom of
       benchmarks/bench_building.py: the three residues a gap's trace built after a weak one were all within 0.7 Å
       of the truth, while at a chain end the two beyond a weak one were 9.0 and 13.5 Å off);
    2. geometry: the residue alone; a new residue next to an anchor also when the anchor is a Ramachandran outlier
       now and was not in the input model (``baseline``);
    3. bad overlaps (``overlaps_with`` of the score rows) with a residue that stays: inside the new residue itself
       or with a model residue the new one goes; of two new residues the one with the lower Q-score (ties: the
       higher number), until none is left.
    """
    built = [n for p in parts for n in p]
    fit, geometry = {}, {}
    for n in built:
        fit[n], geometry[n] = residue_problems(rows.get((chain, n), {}), min_fit=min_fit, min_q_score=min_q_score)
    trimmed = trim_parts(parts, fit, cascade)
    for anchor in anchors:
        if not anchor_made_outlier(rows.get((chain, anchor), {}), baseline.get((chain, anchor))):
            continue
        for n in (anchor - 1, anchor + 1):  # the new residue next to it (whichever trace built it)
            if n in geometry:
                geometry[n] = geometry[n] + [f"makes its anchor {chain}{anchor} a Ramachandran outlier"]
    for n in built:
        if n not in trimmed and geometry[n]:
            trimmed[n] = "; ".join(geometry[n])

    def beyond() -> None:  # at a chain end nothing stays beyond a residue that went: it would float free
        if cascade:
            for part in parts:
                gone = next((n for n in part if n in trimmed), None)
                for m in part[part.index(gone) + 1:] if gone is not None else []:
                    trimmed.setdefault(m, f"built after residue {gone} (trimmed)")

    beyond()
    while True:
        staying = [n for n in built if n not in trimmed]
        clashes = []
        for n in staying:
            for other in rows.get((chain, n), {}).get("overlaps_with", []):
                m = re.fullmatch(r"(.+?)(-?\d+)", other)
                partner = (m.group(1), int(m.group(2))) if m else (other, None)
                if partner[0] == chain and partner[1] in trimmed:
                    continue
                if partner[0] == chain and partner[1] in staying and partner[1] != n:
                    q = {k: rows.get((chain, k), {}).get("q_score") for k in (n, partner[1])}
                    loser = min((n, partner[1]), key=lambda k: (q[k] if _finite(q[k]) else -9.0, -k))
                else:
                    loser = n
                clashes.append((loser, other))
        if not clashes:
            return trimmed
        for loser, other in clashes:
            trimmed.setdefault(loser, f"overlaps {other}")
        beyond()


def register_check(scores: dict, n_residues: int) -> dict:
    """The register of a segment from its scan (``{shift: mean CC}``): kept when shift 0 scores best by at least
    :data:`REGISTER_MARGIN`; refused when another shift scores better, or as well within that margin. Segments of
    fewer than :data:`REGISTER_MIN_RESIDUES` residues are not judged (their sequence says too little)."""
    values = {int(k): float(v) for k, v in scores.items() if _finite(v)}
    others = {k: v for k, v in values.items() if k != 0}
    if n_residues < REGISTER_MIN_RESIDUES or 0 not in values or not others:
        return {"judged": False, "ok": True, "best_shift": 0, "margin": float("nan"), "scores": values}
    best_other = max(others, key=lambda k: (others[k], -abs(k), k))
    margin = values[0] - others[best_other]
    best = 0 if margin > 0 else best_other
    ok = margin >= REGISTER_MARGIN
    reason = "" if ok else (f"register: shift {best_other:+d} scores CC {others[best_other]:.3f} against "
                            f"{values[0]:.3f} in register (margin {margin:+.3f} < {REGISTER_MARGIN:g})")
    return {"judged": True, "ok": ok, "best_shift": best, "margin": float(margin), "scores": values,
            "reason": reason}


def trim_parts(parts: list[list[int]], problems: dict[int, list[str]], cascade: bool = True) -> dict[int, str]:
    """{residue: reason} of the new residues to remove: those with a problem and, with `cascade` (a chain end), in
    each trace part every residue built after one of them (a chain does not continue past a residue the map does
    not support)."""
    trimmed: dict[int, str] = {}
    for part in parts:
        for i, n in enumerate(part):
            if problems.get(n):
                trimmed[n] = "; ".join(problems[n])
                if cascade:
                    for m in part[i + 1:]:
                        trimmed.setdefault(m, f"built after residue {n} (trimmed)")
                    break
    return trimmed


def judge_segment(seg: Segment, trial: Trial, *, min_fit: float, min_q_score: float,
                  baseline: dict) -> tuple[list[int], dict[int, str], dict]:
    """(kept residues, {trimmed: reason}, register record) of one segment in one trial: the register is judged on
    the residues the density supports (CC and Q-score; a chain end's trace beyond them is no part of its register),
    then :func:`judge_residues` decides residue by residue."""
    parts, cascade = trial.parts[seg.id], seg.kind != "gap"
    built = [n for p in parts for n in p]
    fit = {n: residue_problems(trial.rows.get((seg.chain, n), {}), min_fit=min_fit, min_q_score=min_q_score)[0]
           for n in built}
    supported = [n for n in built if n not in trim_parts(parts, fit, cascade)]
    per_residue = trial.register.get(seg.id, {}).get("per_residue", {})
    scores = {k: float(np.mean([v[str(n)] for n in supported])) for k, v in per_residue.items()
              if supported and all(str(n) in v for n in supported)}
    register = register_check(scores, len(supported))
    trimmed = judge_residues(seg.chain, parts, seg.anchors(), trial.rows, baseline, min_fit=min_fit,
                             min_q_score=min_q_score, cascade=cascade)
    if not register["ok"]:
        trimmed = {**trimmed, **{n: register["reason"] for n in supported}}
    return [n for n in built if n not in trimmed], trimmed, register


def anchor_made_outlier(row: dict, before: dict | None) -> bool:
    """A kept residue next to new ones that is a Ramachandran outlier now and was not in the input model."""
    p, p0 = row.get("rama_probability"), (before or {}).get("rama_probability")
    return _finite(p) and p < RAMA_OUTLIER_P and not (_finite(p0) and p0 < RAMA_OUTLIER_P)


def _replace_residues(target: gemmi.Chain, source: gemmi.Chain, numbers: set[int]) -> None:
    """Put `source`'s residues with these numbers into `target` (replacing any there), in residue-number order."""
    keep = [target[i].clone() for i in range(len(target)) if target[i].seqid.num not in numbers]
    new = [r.clone() for r in source if r.seqid.num in numbers]
    for r in new:
        info = gemmi.find_tabulated_residue(r.name)
        if info is not None and info.is_amino_acid():
            r.het_flag = "A"  # coot and servalcat may write the residues coot added as HETATM
    residues = sorted(keep + new, key=lambda r: (r.het_flag == "H", r.seqid.num, r.seqid.icode))
    for i in range(len(target) - 1, -1, -1):
        del target[i]
    for r in residues:
        target.add_residue(r)


def merge(structure: gemmi.Structure, filled: gemmi.Structure, segments: list[Segment],
          chosen: dict) -> gemmi.Structure:
    """The built model: the input model (its metadata, B-factors) with coot's completed side chains (`filled`), each
    segment's kept residues from its chosen trial and, from that trial, the peptide atoms of the model residues
    next to them (:func:`linked_atoms`)."""
    final = structure.clone()
    for ch in final[0]:
        if ch.name in [c.name for c in filled[0]]:
            _replace_residues(ch, filled[0][ch.name], {int(r.seqid.num) for r in ch})
    model_numbers = {ch.name: {int(r.seqid.num) for r in ch} for ch in final[0]}
    for seg in segments:
        if seg.id not in chosen:
            continue
        trial, kept, _ = chosen[seg.id]
        if not kept:
            continue
        source, target = trial.structure[0][seg.chain], final[0][seg.chain]
        _replace_residues(target, source, residues_to_take(seg, kept))
        for m, atoms in linked_atoms(kept, model_numbers[seg.chain]):
            mine, theirs = target[str(m)][0], source[str(m)][0]
            for name in atoms:
                a, b = mine.find_atom(name, "*"), theirs.find_atom(name, "*")
                if a is not None and b is not None:
                    a.pos = b.pos
    return final


def residues_to_take(seg: Segment, kept: list[int]) -> set[int]:
    """Residue numbers the built model takes from a segment's trial: its kept residues, nothing else (refinement
    held every other residue but the peptide atoms next to the new ones, see :func:`merge`; each segment decides
    only its own residues: adjacent segments, e.g. a gap split by a residue kept in an earlier completion, must not
    put back what the other trimmed)."""
    return {n for n in kept if n in {m for m, _ in seg.residues}}


# ---------------------------------------------------------------------- the whole completion
def complete_model(model, map_path, sequence, workdir, resolution: float, *, trials: int = DEFAULTS["trials"],
                   seed: int = DEFAULTS["seed"], min_fit: float = DEFAULTS["min_fit"],
                   min_q_score: float = DEFAULTS["min_q_score"],
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
    residues; NaN if none), ``built_q_score_mean``, ``side_chains_completed``, ``segments`` (each with kind,
    status, reason, chosen trial, every trial's score, the register scan), ``refused`` (segments not built, with
    the reason), ``final_check`` (residues removed by the check of the merged model) and ``seconds``.
    """
    from ..models import read_model, write_model

    t0 = time.perf_counter()
    resolution, monlib = _check_builder(trials, resolution, monlib)
    model = Path(model).absolute()
    run, output = _start(map_path, workdir, output, timeout)
    structure = read_model(model)
    sequences, segments, chains = _plan(structure, model, sequence, sequence_model, max_residues_per_end,
                                        max_gap_residues)
    todo = [s for s in segments if not s.refused]
    filled_path, seconds = run.workdir / "filled.cif", {}
    t = time.perf_counter()
    side_chains = _fill_side_chains(model, filled_path, run)
    seconds["fill"] = time.perf_counter() - t
    filled = gemmi.read_structure(str(filled_path))
    baseline = _anchor_baseline(todo, filled_path, run)
    t = time.perf_counter()
    offsets = {c: v["offset"] for c, v in chains.items()}
    results = [_run_trial(k, int(seed) + k, todo, filled_path, run.map_path, resolution, monlib,
                          int(refine_cycles), sequences, offsets, run.workdir, run.log, timeout)
               for k in range(int(trials) if todo else 0)]
    seconds["trials"] = time.perf_counter() - t
    b_new = _median_b(structure)
    chosen = _choose_trials(segments, results, baseline, min_fit=min_fit, min_q_score=min_q_score)
    final, final_check = _check_merged(structure, filled, segments, chosen, baseline, b_new, run)
    rows_out, built = _residue_rows(segments, chosen)
    _restore_b(final, structure, b_new)
    write_model(final, output)
    parameters = {"trials": int(trials), "seed": int(seed), "min_fit": float(min_fit),
                  "min_q_score": float(min_q_score), "max_residues_per_end": int(max_residues_per_end),
                  "max_gap_residues": int(max_gap_residues), "refine_cycles": int(refine_cycles),
                  "resolution": float(resolution), "monlib": str(monlib), "register_margin": REGISTER_MARGIN,
                  "rama_outlier_p": RAMA_OUTLIER_P}
    report = _report(model, run.map_path, sequence, sequence_model, parameters, chains, built, side_chains, segments,
                     results, final_check, output)
    seconds["total"] = time.perf_counter() - t0
    report["seconds"] = seconds
    return output, report, pd.DataFrame(rows_out, columns=TABLE_COLUMNS)


@dataclass(frozen=True)
class _Run:
    """Where one completion runs: the map, the work folder, the coot log and each coot step's time limit."""

    map_path: Path
    workdir: Path
    log: Path
    timeout: float


def _start(map_path, workdir, output, timeout: float) -> tuple[_Run, Path]:
    """The completion's run (absolute paths; the work folder made, the coot log emptied) and its output path
    (default ``workdir/built_model.cif``)."""
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(Path(map_path).absolute(), workdir, workdir / "coot_building.log", timeout)
    run.log.write_text("")
    return run, Path(output) if output is not None else workdir / "built_model.cif"


def _fill_side_chains(model: Path, filled_path: Path, run: _Run) -> tuple[list, list]:
    """coot's fill of the model's truncated side chains into `filled_path`, checked (:func:`_check_side_chains`):
    (completed residues, residues left truncated)."""
    fill = _coot_agreed("fill", model, run.map_path, filled_path, run.workdir, run.log, timeout=run.timeout)
    return _check_side_chains(model, filled_path, run.map_path, fill.get("partial_residues", []), run.workdir,
                              run.log, run.timeout)


def _median_b(structure: gemmi.Structure) -> float:
    """The B new residues get: the model's median (30 Å² for a model without atoms)."""
    b_values = [a.b_iso for ch in structure[0] for r in ch for a in r]
    return float(np.median(b_values)) if b_values else 30.0


def _check_builder(trials, resolution: float, monlib):
    """The checked resolution and the monomer library; a clear error when a setting or a tool is missing."""
    if int(trials) < 1:
        raise LocScaleInputError(f"model_completion.coot.trials = {trials}", "use at least 1 trial")
    if not coot_available() or importlib.util.find_spec("servalcat") is None:
        raise LocScaleInputError("coot-headless-api or servalcat is not installed (model_completion.mode: coot "
                                 "needs both)", "install this project with its validation extra: "
                                 "pip install -e '.[validation]'")
    from ..limits import check_resolution
    from ..tools.restraints import resolve_monlib

    return check_resolution(resolution), resolve_monlib(monlib)


def _plan(structure: gemmi.Structure, model: Path, sequence, sequence_model, max_residues_per_end: int,
          max_gap_residues: int):
    """(sequences by chain, segments, chains' record) of :func:`plan_segments`; an error without any sequence."""
    sequences = chain_sequences(structure, sequence, sequence_model)
    if not sequences:
        raise LocScaleInputError("no sequence for any protein chain of the model",
                                 "give model_completion.sequence (a FASTA file), or a model with its sequence "
                                 "(mmCIF entity_poly_seq or PDB SEQRES)", sequence or model)
    segments, chains = plan_segments(structure, sequences, max_residues_per_end=max_residues_per_end,
                                     max_gap_residues=max_gap_residues, sequence_path=sequence)
    return sequences, segments, chains


def _anchor_baseline(todo: list[Segment], filled_path: Path, run: _Run) -> dict:
    """The anchors' scores (Ramachandran probabilities) before building: a built segment must not make them
    outliers. Empty when nothing is to be built."""
    if not todo:
        return {}
    plan = run.workdir / "anchors.json"
    plan.write_text(json.dumps({"score": [[s.chain, a] for s in todo for a in s.anchors()]}))
    return _rows_by_residue(_coot("score", filled_path, run.map_path, None, run.workdir, run.log, plan=plan,
                                  timeout=run.timeout, result=run.workdir / "anchors_score.json"))


def _choose_trials(segments: list[Segment], results: list[Trial], baseline: dict, *, min_fit: float,
                   min_q_score: float) -> dict:
    """Segment id -> (trial, kept residue numbers, {trimmed number: reason}) of each built segment: the trial whose
    kept residues score highest (the first on a tie). Every segment's record says what was judged."""
    chosen: dict[str, tuple[Trial, list[int], dict[int, str]]] = {}
    for seg in segments:
        seg_record = {"id": seg.id, "kind": seg.kind, "chain": seg.chain, "residues": len(seg.residues)}
        seg.record = seg_record
        if seg.refused:
            seg_record.update(status="refused", reason=seg.refused)
            continue
        judged = []
        for trial in results:
            kept, trimmed, register = judge_segment(seg, trial, min_fit=min_fit, min_q_score=min_q_score,
                                                    baseline=baseline)
            q = [trial.rows.get((seg.chain, n), {}).get("q_score") for n in kept]
            judged.append({"trial": trial.number, "seed": trial.seed,
                           "placed": sum(len(p) for p in trial.parts[seg.id]), "kept": len(kept),
                           "score": float(sum(v for v in q if _finite(v))), "register": register,
                           "junction_c_n": trial.junctions.get(seg.id), "stopped": trial.stopped.get(seg.id, ""),
                           "_kept": kept, "_trimmed": trimmed})
        best = max(range(len(judged)), key=lambda i: (judged[i]["score"], -i))
        chosen[seg.id] = (results[best], judged[best]["_kept"], judged[best]["_trimmed"])
        seg_record.update(trial=best, register=judged[best]["register"],
                          junction_c_n=judged[best]["junction_c_n"],
                          scores=[{k: v for k, v in j.items() if not k.startswith("_")} for j in judged])
    return chosen


def _check_merged(structure: gemmi.Structure, filled: gemmi.Structure, segments: list[Segment], chosen: dict,
                  baseline: dict, b_new: float, run: _Run) -> tuple[gemmi.Structure, list[str]]:
    """The merged model, checked as a whole (segments chosen from different trials may meet): up to
    :data:`FINAL_CHECK_ROUNDS` rounds of scoring it and removing the kept residues that now have a problem
    (`chosen` is updated in place); returns it and the residues removed ("A12: reason")."""
    from ..models import write_model

    final = merge(structure, filled, segments, chosen)
    final_check = []
    for _ in range(FINAL_CHECK_ROUNDS):
        kept_keys = [(seg.chain, n) for seg in segments if seg.id in chosen for n in chosen[seg.id][1]]
        if not kept_keys:
            break
        merged = run.workdir / "merged.cif"
        _restore_b(final, structure, b_new)
        write_model(final, merged)
        check_plan = run.workdir / "merged_score_plan.json"
        check_plan.write_text(json.dumps({"score": [list(k) for k in kept_keys]
                                          + [[s.chain, a] for s in segments if s.id in chosen for a in s.anchors()]}))
        rows = _rows_by_residue(_coot("score", merged, run.map_path, None, run.workdir, run.log, plan=check_plan,
                                      timeout=run.timeout, result=run.workdir / "merged_score.json"))
        removed = _remove_failing(segments, chosen, rows, baseline)
        final = merge(structure, filled, segments, chosen)
        final_check += removed
        if not removed:
            break
    return final, final_check


def _remove_failing(segments: list[Segment], chosen: dict, rows: dict, baseline: dict) -> list[str]:
    """Remove from `chosen` (in place) the kept residues that fail in the merged model's scores `rows`; returns
    them ("A12: reason")."""
    removed = []
    for seg in segments:
        if seg.id not in chosen:
            continue
        trial, kept, trimmed = chosen[seg.id]
        parts = [[n for n in p if n in kept] for p in trial.parts[seg.id]]
        more = judge_residues(seg.chain, parts, seg.anchors(), rows, baseline, min_fit=-1.0, min_q_score=-1.0,
                              cascade=seg.kind != "gap")
        if more:
            more = {n: f"in the merged model: {r}" for n, r in more.items()}
            removed += [f"{seg.chain}{n}: {r}" for n, r in more.items()]
            trimmed = {**trimmed, **more}
            kept = [n for n in kept if n not in more]
            chosen[seg.id] = (trial, kept, trimmed)
    return removed


def _residue_rows(segments: list[Segment], chosen: dict) -> tuple[list[dict], dict]:
    """The per-residue table's rows (built, trimmed or refused, with the reason) and the totals (``built``,
    ``trimmed``, the kept residues' ``cc`` and ``q_score``); completes each segment's record with its status."""
    rows_out, built = [], {"built": 0, "trimmed": 0, "cc": [], "q_score": []}
    for seg in segments:
        if seg.refused:
            rows_out += [_row(seg, n, name, "refused", seg.refused) for n, name in seg.residues]
            continue
        trial, kept, trimmed = chosen[seg.id]
        placed = {n for p in trial.parts[seg.id] for n in p}
        built["built"] += len(kept)
        built["trimmed"] += len(trimmed)
        for n, name in seg.residues:
            r = trial.rows.get((seg.chain, n), {})
            if n in kept:
                built["cc"].append(r.get("cc", float("nan")))
                built["q_score"].append(r.get("q_score", float("nan")))
                rows_out.append(_row(seg, n, name, "built", "", trial.number, r))
            elif n in trimmed:
                rows_out.append(_row(seg, n, name, "trimmed", trimmed[n], trial.number, r))
            else:
                reason = trial.stopped.get(seg.id) or ("not built" if n not in placed else "")
                rows_out.append(_row(seg, n, name, "refused", reason or "not built"))
        seg.record.update(status="built" if kept else ("trimmed" if placed else "refused"), built=len(kept),
                          trimmed=len(trimmed))
        if not kept and not placed:
            seg.record["reason"] = trial.stopped.get(seg.id) or "coot placed no residue"
    return rows_out, built


def _report(model: Path, map_path: Path, sequence, sequence_model, parameters: dict, chains: dict, built: dict,
            side_chains: tuple[list, list], segments: list[Segment], results: list[Trial], final_check: list[str],
            output: Path) -> dict:
    """The completion's record (:func:`complete_model`), without its timings."""
    completed, reverted = side_chains
    return {
        "mode": "coot",
        "model": str(model), "map": str(map_path), "sequence": None if sequence is None else str(sequence),
        "sequence_model": None if sequence is not None or sequence_model is None else str(sequence_model),
        "parameters": parameters,
        "chains": chains,
        "residues_built": int(built["built"]),
        "residues_trimmed": int(built["trimmed"]),
        "built_fit_mean": float(np.nanmean(built["cc"])) if built["cc"] else float("nan"),
        "built_q_score_mean": float(np.nanmean(built["q_score"])) if built["q_score"] else float("nan"),
        "side_chains_completed": len(completed),
        "side_chains_completed_residues": completed,
        "side_chains_left_truncated": reverted,
        "segments": [s.record for s in segments],
        "refused": [{"id": s.id, "reason": s.record.get("reason", "")} for s in segments
                    if s.record.get("status") == "refused"],
        "repairs": {str(t.number): t.repairs for t in results},
        "final_check": final_check,
        "built_model": str(output),
    }


def _check_side_chains(model: Path, filled_path: Path, map_path: Path, partial: list[str], workdir: Path, log: Path,
                       timeout: float) -> tuple[list[str], dict[str, str]]:
    """The side chains coot completed (``partial``, e.g. ``["A460"]``), seated on the input's main chain
    (:func:`reseat_side_chains`) and held to the same geometry as new residues: other library rotamers for those
    that overlap or are rotamer outliers (coot ``repair``), then each one that
    still has more bad overlaps than the truncated residue had, or is a rotamer outlier, goes back to the input's
    truncated residue (``filled_path`` is rewritten). Returns (completed, {left truncated: reason})."""
    keys = []
    for name in partial:
        m = re.fullmatch(r"(.+?)(-?\d+)", name)
        if m:
            keys.append((m.group(1), int(m.group(2))))
    if not keys:
        return [], {}
    chains = sorted({c for c, _ in keys})
    reseat_side_chains(filled_path, model, keys)
    plan = workdir / "side_chains.json"
    plan.write_text(json.dumps({"repair": ["rotamers"], "score": [list(k) for k in keys],
                                "segments": [{"id": f"{c} side chains", "chain": c, "anchors": [],
                                              "built": [n for cc, n in keys if cc == c]} for c in chains]}))
    repaired = workdir / "filled_repaired.cif"
    _coot("repair", filled_path, map_path, repaired, workdir, log, plan=plan, timeout=timeout)
    after = _rows_by_residue(_coot("score", repaired, map_path, None, workdir, log, plan=plan, timeout=timeout,
                                   result=workdir / "side_chains_score.json"))
    before = _rows_by_residue(_coot("score", model, map_path, None, workdir, log, plan=plan, timeout=timeout,
                                    result=workdir / "side_chains_input_score.json"))
    reverted = {}
    for key in keys:
        new, old = after.get(key, {}), before.get(key, {})
        rot = new.get("rotamer_probability")
        if (new.get("overlaps") or 0) > (old.get("overlaps") or 0):
            reverted[f"{key[0]}{key[1]}"] = f"completed side chain overlaps {', '.join(new.get('overlaps_with', []))}"
        elif _finite(rot) and rot <= 0.0:
            reverted[f"{key[0]}{key[1]}"] = "completed side chain is a rotamer outlier"
    st = gemmi.read_structure(str(repaired))
    original = gemmi.read_structure(str(model))
    for c in chains:
        numbers = {n for cc, n in keys if cc == c and f"{cc}{n}" in reverted}
        if numbers:
            _replace_residues(st[0][c], original[0][c], numbers)
    st.setup_entities()
    with atomic_output(filled_path) as tmp:
        st.make_mmcif_document().write_file(str(tmp))
    return [f"{c}{n}" for c, n in keys if f"{c}{n}" not in reverted], reverted


#: the main-chain atoms a completed side chain is seated on (they stay where the input model has them)
SEAT_ATOMS = ("N", "CA", "C")


def reseat_side_chains(filled_path: Path, model: Path, keys: list[tuple[str, int]]) -> None:
    """Put the completed residues `keys` of `filled_path` back on the input model's main chain: coot's side-chain
    fitting moves the whole residue (measured on ten aromatic side chains of the EMD-3488 crop: N, CA, C, O and CB
    by 0.02–0.53 Å), so each residue's new atoms and CB are moved rigidly with the superposition of its N, CA, C
    onto the input's, and N, CA, C, O take the input's positions; every other residue takes the input's atoms
    (the fill also refines the residues around: on the TRPV1 phantom it moved neighbours by up to 0.4 Å). The side
    chain keeps its fitted rotamer and ideal geometry; no atom of the input model moves."""
    st, original = gemmi.read_structure(str(filled_path)), gemmi.read_structure(str(model))
    for chain, n in keys:
        if not st[0].find_chain(chain) or not original[0].find_chain(chain):
            continue
        res, ref = st[0][chain][str(n)], original[0][chain][str(n)]
        if not res or not ref:
            continue
        res, ref = res[0], ref[0]
        moved = [res.find_atom(a, "*") for a in SEAT_ATOMS]
        fixed = [ref.find_atom(a, "*") for a in SEAT_ATOMS]
        if any(a is None for a in moved + fixed):
            continue
        sup = gemmi.superpose_positions([a.pos for a in fixed], [a.pos for a in moved])
        for atom in res:
            kept = ref.find_atom(atom.name, "*")
            if atom.name in ("N", "CA", "C", "O") and kept is not None:
                atom.pos = kept.pos
            else:
                atom.pos = gemmi.Position(sup.transform.apply(atom.pos))
    for ch in original[0]:  # every other residue as the input has it (coot's fill refines a zone around each)
        if st[0].find_chain(ch.name):
            _replace_residues(st[0][ch.name], ch, {int(r.seqid.num) for r in ch} - {n for c, n in keys
                                                                                        if c == ch.name})
    st.setup_entities()
    with atomic_output(filled_path) as tmp:
        st.make_mmcif_document().write_file(str(tmp))


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
    nan = float("nan")
    return {"chain": seg.chain, "resnum": n, "resname": name, "segment": seg.id, "kind": seg.kind,
            "status": status, "reason": reason, "trial": trial if trial is not None else -1,
            "cc": r.get("cc", nan), "q_score": r.get("q_score", nan),
            "rama_probability": r.get("rama_probability", nan),
            "rotamer_probability": r.get("rotamer_probability", nan), "overlaps": r.get("overlaps", nan),
            "ca_x": ca[0], "ca_y": ca[1], "ca_z": ca[2]}


def write_outputs(report: dict, table: pd.DataFrame, json_path, tsv_path) -> None:
    """The completion record (JSON, with provenance) and the per-residue table (TSV), atomically."""
    from ..records import write_json

    write_json(json_path, report)
    with atomic_output(tsv_path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
