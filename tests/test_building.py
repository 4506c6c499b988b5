"""Automated model completion with coot (locscale.building.completion, locscale.building.coot_tool) on a crop of
EMD-3488 around chain A of 5ME2 with ten residues removed: five inside a helix (58–62, helix 52–72) and the last five
of the chain (136–140).

Measured with coot-headless-api 1.3.3rc1 and servalcat 0.4.142 (2 trials, seed 0, this file's inputs;
min_fit 0.35 and min_q_score 0.3: the defaults 0.55 and 0.5 are calibrated for LocScale maps, and CC and Q-score
run lower in the deposited map, whose own model has CC 0.37 and Q-score 0.44 at its 10th percentile; deterministic,
so the same numbers every run): the gap came back 4/5 with CA within 1 Å of the deposited positions (0.42–0.67 Å),
traced from both of its anchors; 62, next to the far anchor, was placed 0.46 Å off but left a Ramachandran outlier
(p < 0.0001) and was trimmed. Of the chain end, 136 was kept (0.57 Å) and 137–140 trimmed (137 had CC 0.25 and was
1.8 Å off; the rest lie beyond it). No CA of the input model moved; only the peptide atoms next to new residues
(C and O of 57 and 135) may.
The thresholds below leave one residue of margin and about 0.3 Å in the distances, for other CPUs and libm builds
(coordinates may differ in the last digits there, which coot's random trials can amplify); they fail for a builder
that misplaces the helix (a register shift moves CA by 1.5 Å), keeps residues in weak density or moves the rest of
the model.
"""

from __future__ import annotations

import importlib.util
import json

import gemmi
import numpy as np
import pytest

from locscale.building.completion import (
    REGISTER_MARGIN,
    Segment,
    chain_sequences,
    complete_model,
    plan_segments,
    register_check,
    residues_to_take,
    sequence_offset,
    trim_parts,
    write_outputs,
)
from locscale.cycle.table import cycle_row, row_schema
from locscale.errors import LocScaleInputError

HAVE_COOT = importlib.util.find_spec("coot_headless_api") is not None
needs_coot = pytest.mark.skipif(not HAVE_COOT, reason="coot-headless-api is not installed (the validation extra)")

GAP = list(range(58, 63))
END = list(range(136, 141))
#: the thresholds for the deposited map (module docstring)
DEPOSITED_MAP = {"min_fit": 0.35, "min_q_score": 0.3}


@pytest.fixture(scope="module")
def gapped(tmp_path_factory, crop):
    """(crop map, gapped model, complete crop model)."""
    d = tmp_path_factory.mktemp("building")
    crop_map, crop_model = crop
    st = gemmi.read_structure(str(crop_model))
    chain = st[0]["A"]
    for i in reversed(range(len(chain))):
        if chain[i].seqid.num in GAP + END:
            del chain[i]
    st.setup_entities()
    st.make_mmcif_document().write_file(str(d / "gapped.cif"))
    return crop_map, d / "gapped.cif", crop_model


def _ca(path) -> dict[int, np.ndarray]:
    st = gemmi.read_structure(str(path))
    return {r.seqid.num: np.array(r["CA"][0].pos.tolist()) for r in st[0]["A"] if r.find_atom("CA", "*")}


# ---------------------------------------------------------------------- without coot
def test_plan_finds_the_gap_and_the_chain_end(gapped):
    _, model, _ = gapped
    st = gemmi.read_structure(str(model))
    seqs = chain_sequences(st)
    assert len(seqs["A"]) == 140
    segments, chains = plan_segments(st, seqs, max_residues_per_end=10, max_gap_residues=20)
    assert chains["A"]["offset"] == 0 and chains["A"]["identity"] == 1.0
    assert [(s.id, s.kind, s.anchor, s.direction) for s in segments] == [("A:58-62", "gap", 57, 1),
                                                                          ("A:136-140", "c_end", 135, 1)]
    assert [n for n, _ in segments[0].residues] == GAP and segments[0].residues[0][1] == "HIS"
    assert not any(s.refused for s in segments)
    # a gap too long for max_gap_residues, and an end limited by max_residues_per_end
    segments, _ = plan_segments(st, seqs, max_residues_per_end=2, max_gap_residues=4)
    assert "longer than max_gap_residues = 4" in segments[0].refused
    assert [n for n, _ in segments[1].residues] == [136, 137]


def test_a_segment_takes_only_its_kept_residues():
    """The built model takes from a segment's trial only the residues it kept; every other residue, the anchors
    included, stays as it was in the input. The TRPV1 phantom (benchmarks/bench_trpv1_completion.py) had gap 503–507
    built with 505 and 507 kept; the next completion plans 503–504 and 506 as two segments, whose trials hold a
    trace of the whole gap: each takes only its own."""
    first = Segment("A:503-504", "A", "gap", 502, 1, [(503, "LEU"), (504, "LYS")], next_residue=505)
    second = Segment("A:506-506", "A", "gap", 505, 1, [(506, "LEU")], next_residue=507)
    assert residues_to_take(first, [503, 504]) == {503, 504}
    assert residues_to_take(second, [506]) == {506}
    assert residues_to_take(first, [504, 505, 506]) == {504}  # never another segment's residues
    assert residues_to_take(first, []) == set()


def test_a_trace_does_not_continue_past_a_residue_with_a_problem():
    """At a chain end the trace is cut at its first residue with a problem (outwards from its anchor); in a gap,
    whose residues stay anchored on both sides, each residue is judged on its own."""
    problems = {60: ["Q-score 0.2 below min_q_score 0.5"], 67: ["Ramachandran outlier (p 0.0010)"]}
    trimmed = trim_parts([[58, 59, 60, 61], [66, 65, 64]], problems)
    assert set(trimmed) == {60, 61}
    assert "Q-score" in trimmed[60] and trimmed[61] == "built after residue 60 (trimmed)"
    trimmed = trim_parts([[58, 59], [62, 61, 60]], {61: ["overlaps A12"]})
    assert set(trimmed) == {61, 60}
    # in a gap (no cascade) each residue is judged on its own
    assert set(trim_parts([[58, 59, 60, 61], [66, 65, 64]], problems, cascade=False)) == {60}


def test_a_new_residue_that_makes_its_anchor_an_outlier_goes():
    """A kept residue that had no φ/ψ before (at a chain break) and is a Ramachandran outlier once a new residue is
    joined to it: the new residue next to it goes, whichever trace built it (on the APH-1 phantom of
    benchmarks/bench_building.py a gap's trace from its far anchor reached the near one, and the near anchor's
    outlier went unnoticed when only the trace from the near anchor was checked)."""
    from locscale.building.completion import judge_residues

    good = {"cc": 0.9, "q_score": 0.7, "rama_probability": 0.1}
    rows = {("C", 135): {"rama_probability": 0.0012}, ("C", 136): good, ("C", 137): good}
    baseline = {("C", 135): {"rama_probability": float("nan")}}
    for parts in ([[136, 137], []], [[], [137, 136]]):
        trimmed = judge_residues("C", parts, [135, 138], rows, baseline, min_fit=0.55, min_q_score=0.5, cascade=False)
        assert trimmed == {136: "makes its anchor C135 a Ramachandran outlier"}, parts
    # at a chain end nothing stays beyond a residue that went, whatever the reason (APH-1 phantom: the last residue,
    # 8 Å off, stayed alone after the three before it went for their geometry)
    end_rows = {("C", n): dict(good) for n in (172, 173, 174, 175)}
    end_rows[("C", 172)]["rama_probability"] = 0.0005
    trimmed = judge_residues("C", [[172, 173, 174, 175]], [171], end_rows, {}, min_fit=0.55, min_q_score=0.5,
                             cascade=True)
    assert set(trimmed) == {172, 173, 174, 175} and "Ramachandran outlier" in trimmed[172]
    # an anchor that was an outlier in the input already is not the new residue's doing
    baseline = {("C", 135): {"rama_probability": 0.001}}
    assert judge_residues("C", [[136, 137], []], [135, 138], rows, baseline, min_fit=0.55, min_q_score=0.5,
                          cascade=False) == {}


def test_the_register_check_keeps_only_a_clear_best_register():
    """Shift 0 must beat every other shift by REGISTER_MARGIN (mean CC of the segment's residues with their side
    chains refitted for each register); a shift that scores better or alike refuses the segment; short segments
    are not judged."""
    clear = {-1: 0.55, 0: 0.72, 1: 0.50, 2: 0.61}
    r = register_check(clear, 5)
    assert r["ok"] and r["judged"] and r["best_shift"] == 0 and abs(r["margin"] - 0.11) < 1e-9
    shifted = {-1: 0.55, 0: 0.60, 1: 0.71}
    r = register_check(shifted, 5)
    assert not r["ok"] and r["best_shift"] == 1 and "shift +1 scores CC 0.710" in r["reason"]
    alike = {-1: 0.55, 0: 0.60, 1: 0.60 - REGISTER_MARGIN / 2}
    r = register_check(alike, 5)
    assert not r["ok"] and r["best_shift"] == 0 and r["margin"] < REGISTER_MARGIN
    short = register_check(shifted, 2)
    assert short["ok"] and not short["judged"]


def test_completed_side_chains_are_seated_on_the_input_main_chain(gapped, tmp_path):
    """Coot's side-chain fitting moves the whole residue (and refines its neighbours); the builder puts it back: N,
    CA, C and O exactly where the input has them, the rest moved rigidly with the residue's N, CA, C, so the side
    chain keeps its conformation, and every other residue as the input has it."""
    from locscale.building.completion import reseat_side_chains

    _, _, deposited = gapped
    original = gemmi.read_structure(str(deposited))
    moved = original.clone()
    res = moved[0]["A"]["33"][0]
    shift = gemmi.Transform(gemmi.Mat33([[0.99, -0.141, 0.0], [0.141, 0.99, 0.0], [0.0, 0.0, 1.0]]),
                            gemmi.Vec3(0.3, -0.2, 0.4))  # about 8° and 0.5 Å
    for atom in res:
        atom.pos = gemmi.Position(shift.apply(atom.pos))
    for atom in moved[0]["A"]["34"][0]:  # the fill's refinement moves neighbours too
        atom.pos = gemmi.Position(atom.pos.x + 0.3, atom.pos.y, atom.pos.z)
    truncated = original.clone()  # the input: residue 33 truncated to CB
    ref = truncated[0]["A"]["33"][0]
    for i in reversed(range(len(ref))):
        if ref[i].name not in ("N", "CA", "C", "O", "CB"):
            del ref[i]
    model, filled = tmp_path / "truncated.cif", tmp_path / "filled.cif"
    truncated.setup_entities()
    truncated.make_mmcif_document().write_file(str(model))
    moved.setup_entities()
    moved.make_mmcif_document().write_file(str(filled))
    reseat_side_chains(filled, model, [("A", 33)])
    seated = gemmi.read_structure(str(filled))[0]["A"]["33"][0]
    true = original[0]["A"]["33"][0]
    neighbour = gemmi.read_structure(str(filled))[0]["A"]["34"][0]
    assert all(a.pos.dist(original[0]["A"]["34"][0][a.name][0].pos) == 0 for a in neighbour)
    for atom in seated:
        # main chain exact; CB and the side chain back within the rounding of the rotation matrix above
        tolerance = 0.0 if atom.name in ("N", "CA", "C", "O") else 0.05
        assert atom.pos.dist(true[atom.name][0].pos) <= tolerance + 1e-6, atom.name


def test_sequence_offset_follows_the_numbering():
    residues = [(11, "VAL"), (12, "LEU"), (13, "SER"), (15, "ALA")]
    assert sequence_offset(residues, "VLSPADK") == (10, 1.0)


def test_a_sequence_that_does_not_match_the_model_is_refused(gapped, tmp_path):
    crop_map, model, _ = gapped
    fasta = tmp_path / "wrong.fasta"
    fasta.write_text(">A\n" + "MKT" * 50 + "\n")
    with pytest.raises(LocScaleInputError, match=r"chain A: the sequence from the FASTA file matches only") as err:
        complete_model(model, crop_map, fasta, tmp_path / "work", 3.2)
    assert "fix:" in str(err.value) and str(fasta) in str(err.value)
    assert not (tmp_path / "work" / "built_model.cif").exists()
    empty = tmp_path / "empty.fasta"
    empty.write_text("VLSPADK\n")
    with pytest.raises(LocScaleInputError, match="not a FASTA file"):
        complete_model(model, crop_map, empty, tmp_path / "work", 3.2)


def test_the_cycle_row_gets_the_completion_columns():
    metrics = {"cc_mask": 0.8}
    row = cycle_row(1, metrics, resolution_source="given",
                    completion={"residues_built": 8, "residues_trimmed": 2, "built_fit_mean": 0.66, "x": 1})
    assert (row["residues_built"], row["residues_trimmed"], row["built_fit_mean"]) == (8, 2, 0.66)
    assert "x" not in row and "residues_built" not in cycle_row(2, metrics, resolution_source="given")
    props = row_schema()["properties"]
    assert props["residues_built"]["type"] == "integer" and "residues_built" not in row_schema()["required"]


# ---------------------------------------------------------------------- with coot
@pytest.fixture(scope="module")
def built(gapped, tmp_path_factory):
    crop_map, model, _ = gapped
    work = tmp_path_factory.mktemp("built")
    path, report, table = complete_model(model, crop_map, None, work, 3.2, trials=2, seed=0, **DEPOSITED_MAP)
    write_outputs(report, table, work / "completion.json", work / "completion.tsv")
    return path, report, table, work


@needs_coot
def test_builder_rebuilds_the_helix_gap_and_trims_the_weak_chain_end(gapped, built):
    _, _, deposited = gapped
    path, report, table, work = built
    truth, ca = _ca(deposited), _ca(path)
    d = {n: float(np.linalg.norm(ca[n] - truth[n])) for n in GAP + END if n in ca}
    # the helix gap: measured 4/5 within 1 Å (0.42–0.67 Å; 62 trimmed as a Ramachandran outlier)
    assert sum(d.get(n, 9.0) <= 1.0 for n in GAP) >= 4, d
    assert all(d[n] < 1.25 for n in GAP if n in d), d
    # the chain end: every kept residue within 1 Å (measured: 136 kept, 0.57 Å)
    kept_end = [n for n in END if n in ca]
    assert len(kept_end) >= 1 and all(d[n] <= 1.0 for n in kept_end), d
    # nothing that fits is trimmed for its fit: every residue trimmed for CC, Q-score or register was more than
    # 1 Å off (one trimmed for its geometry may sit well: 62, next to the held anchor)
    trimmed = table[table.status == "trimmed"]
    for _, row in trimmed[~trimmed.reason.str.contains("outlier|overlaps")].iterrows():
        assert np.linalg.norm(np.array([row.ca_x, row.ca_y, row.ca_z]) - truth[row.resnum]) > 1.0, row
    assert set(trimmed.resnum) <= set(END) | {62}
    # the record and the table say the same; every kept residue passed the checks
    record = json.loads((work / "completion.json").read_text())
    assert record["residues_built"] == len(d) == int((table.status == "built").sum())
    assert record["residues_trimmed"] == len(trimmed) and record["refused"] == []
    assert 0.35 <= record["built_fit_mean"] <= 1.0 and record["built_q_score_mean"] >= 0.3
    assert "provenance" in record
    assert all(s["status"] == "built" and len(s["scores"]) == 2 for s in record["segments"])
    kept = table[table.status == "built"]
    assert (kept.rama_probability.fillna(1.0) >= 0.002).all() and (kept.q_score >= 0.3).all(), kept
    # the model keeps everything else: the other residues, their B-factors and the haem
    st = gemmi.read_structure(str(path))
    assert len(st[0]["A"]) == len(gemmi.read_structure(str(gapped[1]))[0]["A"]) + len(d)
    assert any(r.name == "HEM" for r in st[0]["A"])


@needs_coot
def test_kept_residues_stay_put(gapped, built):
    """Servalcat refines only the new residues and the peptide atoms they share with the model (the C and O of the
    residue before a new one, the N of the one after it) and holds every other atom: no other atom of the input
    model moves, no CA at all. A refinement of the whole model, or of the anchor residues with the new ones, moves
    them (as the builder did before: 0.1–3.7 Å on the phantoms of benchmarks/bench_building.py; here an anchor's
    side chain moved into an overlap with its own main chain on one of them)."""
    _, model, _ = gapped
    path, report, table, _ = built
    before = {r.seqid.num: r for r in gemmi.read_structure(str(model))[0]["A"]}
    after = {r.seqid.num: r for r in gemmi.read_structure(str(path))[0]["A"]}
    moved = {(n, a.name): round(a.pos.dist(after[n][a.name][0].pos), 3) for n, res in before.items() for a in res
             if a.pos.dist(after[n][a.name][0].pos) > 0}
    kept = set(table[table.status == "built"].resnum)
    allowed = {(n - 1, name) for n in kept if n - 1 in before for name in ("C", "O")}
    allowed |= {(n + 1, "N") for n in kept if n + 1 in before}
    assert set(moved) <= allowed, moved
    assert max(moved.values(), default=0.0) < 1.0, moved


@needs_coot
def test_the_register_scan_finds_the_register_of_a_helix(gapped, tmp_path):
    """The register scan (coot's side chains refitted for each shift of the sequence along the trace) on the
    deposited residues 55–65 of the helix: in register, shift 0 has the best mean CC by more than REGISTER_MARGIN
    (measured: 0.561 against 0.462 for shift -2, margin 0.099); with the sequence shifted by one residue, shift -1
    wins and the segment is refused."""
    from locscale.building.completion import _coot

    crop_map, _, deposited = gapped
    st = gemmi.read_structure(str(deposited))
    names = {r.seqid.num: r.name for r in st[0]["A"]}
    residues = list(range(55, 66))
    for label, offset, best in (("in_register", 0, 0), ("shifted", 1, -1)):
        sequence = {str(n): names[n + offset] for n in range(residues[0] - 4, residues[-1] + 4) if n + offset in names}
        plan = tmp_path / f"{label}.json"
        plan.write_text(json.dumps({"segments": [{"id": "A:55-65", "chain": "A", "built": residues,
                                                  "shifts": [-3, -2, -1, 0, 1, 2, 3], "sequence": sequence}]}))
        result = _coot("register", deposited, crop_map, None, tmp_path, tmp_path / "coot.log", plan=plan,
                       result=tmp_path / f"{label}_result.json", timeout=600)
        check = register_check(result["segments"][0]["scores"], len(residues))
        print(label, {k: round(v, 3) for k, v in check["scores"].items()}, round(check["margin"], 3))
        assert check["best_shift"] == best, check
        assert check["ok"] == (best == 0) and abs(check["margin"]) >= REGISTER_MARGIN, check


@needs_coot
def test_a_good_completion_passes_the_final_cycle_checks(gapped, built, tmp_path):
    """The completed model, validated like a cycle's model (coot and servalcat), against the gapped input model:
    the input's residues keep their Ramachandran classes, the built ones are free of outliers and overlaps, the
    atom overlaps do not rise, so the selection hands out the completed model although its FSCaverage (set here)
    is lower than the gapped model's. Measured: Ramachandran outliers 0 → 0 %, atom overlaps 0.98 → 0.94 per 1000
    atoms, bond RMSZ 1.46 → 1.44 (gapped → completed). The builder before this check kept residues in outlier
    regions and overlaps (on the phantoms of benchmarks/bench_building.py every completed cycle was flagged)."""
    from locscale.cycle.selection import choose_final_cycle
    from locscale.validation.model import validate_model

    crop_map, model, _ = gapped
    tables, summaries = {}, {}
    for c, path in ((0, model), (2, built[0])):
        summaries[c], tables[c] = validate_model(path, crop_map, 3.2, tmp_path / f"validation_{c}",
                                                 tools=["coot", "servalcat"])
    tables[1] = tables[0]
    rows = [{"cycle": c, "b_mean": 40.0, "sharpness_b_vs_global": 0.0, "fsc_average": f,
             **summaries[0 if c < 2 else 2]} for c, f in ((0, 0.70), (1, 0.80), (2, 0.79))]
    print({c: {k: round(v, 3) for k, v in summaries[c].items() if k in ("rama_outliers_pct",
            "atom_overlaps_per_1000_atoms", "bond_rmsz")} for c in summaries})
    sel = choose_final_cycle(rows, residues=tables)
    assert sel.flags[2] == [], sel.flags
    assert sel.cycle == 2 and sel.completion["holds_completion"], sel.reason
    assert sel.completion["residues_added"] == built[1]["residues_built"]


@needs_coot
def test_two_runs_give_byte_identical_models(gapped, built, tmp_path):
    crop_map, model, _ = gapped
    first = built[0]
    second, report, _ = complete_model(model, crop_map, None, tmp_path, 3.2, trials=2, seed=0, **DEPOSITED_MAP)
    assert second.read_bytes() == first.read_bytes()
    assert report["residues_built"] == built[1]["residues_built"]


# every aromatic residue of chain A but the C-terminal Tyr140 (its ring in no density: mean 0.2 σ at its atoms)
AROMATIC = [14, 24, 33, 36, 42, 43, 46, 98, 117, 128]
#: atom names that are the same atoms after a 180° ring flip
RING_FLIP = {"CD1": "CD2", "CD2": "CD1", "CE1": "CE2", "CE2": "CE1"}


def _side_chain_rmsd(deposited: gemmi.Residue, filled: gemmi.Residue) -> float:
    """RMSD (Å) of the side-chain atoms beyond CB, the lower of the two namings of a PHE/TYR ring."""
    names = [a.name for a in deposited if a.name not in ("N", "CA", "C", "O", "CB")]
    flips = [{}, RING_FLIP] if deposited.name in ("PHE", "TYR") else [{}]
    return min(float(np.sqrt(np.mean([deposited[n][0].pos.dist(filled[f.get(n, n)][0].pos) ** 2 for n in names])))
               for f in flips)


@needs_coot
def test_side_chain_completion_is_reproducible_and_restores_the_aromatic_rings(gapped, tmp_path):
    """The builder's coot ``fill`` step (``fill_partial_residues``, which also refines what it completes), run twice
    in two fresh processes through the builder's own subprocess path, on the crop model with ten aromatic side chains
    truncated to CB: the same file byte for byte, and the side chains back where they were deposited."""
    from locscale.building.completion import _coot

    crop_map, _, deposited = gapped
    st = gemmi.read_structure(str(deposited))
    for res in st[0]["A"]:
        if res.seqid.num in AROMATIC:
            for i in reversed(range(len(res))):
                if res[i].name not in ("N", "CA", "C", "O", "CB"):
                    del res[i]
    st.setup_entities()
    truncated = tmp_path / "truncated.cif"
    st.make_mmcif_document().write_file(str(truncated))
    outputs, results = [], []
    for k in range(2):
        work = tmp_path / f"fill{k}"
        work.mkdir()
        results.append(_coot("fill", truncated, crop_map, work / "filled.cif", work, work / "coot.log", timeout=600))
        outputs.append(work / "filled.cif")
    for r in results:  # the result has the step's wall time too
        assert r["partial_residues"] == [f"A{n}" for n in AROMATIC] and r["fill_status"] == 1, r
    # (1) reproducible: measured identical in 20 of 20 fresh runs, 10 of them with both cores loaded
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    # (2) every truncated residue has its side chain back, atom for atom
    before = {r.seqid.num: r for r in gemmi.read_structure(str(deposited))[0]["A"]}
    after = {r.seqid.num: r for r in gemmi.read_structure(str(outputs[0]))[0]["A"]}
    for n in AROMATIC:
        assert sorted(a.name for a in after[n]) == sorted(a.name for a in before[n]), n
    # (3) near the deposited side chains. A rotation by Δ about CA–CB moves the atoms beyond CB by RMSD
    # 2·sin(Δ/2)·r, with r their RMS distance from that axis (2.8–3.6 Å in these ten): another χ1 rotamer
    # (Δ ≈ 120°) puts them 4.8–6.2 Å off, the measured spread inside the right rotamer (|Δχ1| ≤ 14°, CB moved
    # ≤ 0.53 Å by the refinement) gives ≤ 0.92 Å; 1.5 Å (Δχ1 up to 24° for Trp, about 30° for Phe) lies between.
    # Measured: 14 0.92, 24 0.45, 33 0.64, 36 0.55, 42 0.50 (ring flipped), 43 0.50, 46 4.27, 98 0.42,
    # 117 0.90, 128 0.47 Å. Phe46 gets another rotamer, legitimately: its deposited χ1 (-159°) lies off the
    # rotamer peaks, and its ring sits in weak density (mean 0.8 σ at the deposited atoms, 0.8 σ at coot's m-85
    # rotamer, against 1.1–3.9 σ at the other nine), so the map does not choose between them.
    # Hence a majority, with one residue of margin for other CPUs and libm builds (as above).
    rmsd = {n: round(_side_chain_rmsd(before[n], after[n]), 2) for n in AROMATIC}
    assert sum(d <= 1.5 for d in rmsd.values()) >= len(AROMATIC) - 2, rmsd
