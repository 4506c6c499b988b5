"""Model edits for the experiments' controls: side chains truncated or mutated, coordinates perturbed, parts
removed or added back, B-factors changed (the paper's model-bias controls and the model-completion
experiments)."""

from __future__ import annotations

import gemmi
import numpy as np

from ..models import _atoms, atom_positions

SIDE_CHAIN_EXCLUDE = {"N", "CA", "C", "O", "CB", "OXT"}


MAIN_CHAIN = {"N", "CA", "C", "O"}


_TRP_TEMPLATE = (
    ("N", 36.808, 38.888, 67.788), ("CA", 37.775, 37.785, 67.809), ("C", 37.346, 36.681, 68.775),
    ("O", 37.745, 35.525, 68.615), ("CB", 39.177, 38.271, 68.153), ("CG", 40.194, 37.247, 67.865),
    ("CD1", 40.796, 36.412, 68.760), ("CD2", 40.706, 36.905, 66.589), ("NE1", 41.675, 35.575, 68.117),
    ("CE2", 41.638, 35.854, 66.781), ("CE3", 40.477, 37.385, 65.297), ("CZ2", 42.331, 35.269, 65.731),
    ("CZ3", 41.162, 36.801, 64.242), ("CH2", 42.086, 35.751, 64.468),
)


def residue_key(chain: str, res: gemmi.Residue) -> str:
    return f"{chain}/{res.name}{res.seqid.num}{res.seqid.icode.strip()}"


def _find_residue(structure: gemmi.Structure, key: str) -> gemmi.Residue:
    chain, rest = key.split("/")
    num = int("".join(c for c in rest if c.isdigit() or c == "-"))
    for res in structure[0][chain]:
        if res.seqid.num == num:
            return res
    raise KeyError(key)


def pick_residue(structure: gemmi.Structure, names: tuple[str, ...]) -> str:
    """The residue of one of `names` (complete side chain) nearest to the model's centre, as 'A/PHE43'."""
    xyz = atom_positions(structure)
    centre = xyz.mean(axis=0)
    best, best_d = None, np.inf
    for ch in structure[0]:
        for res in ch:
            if res.name in names and res.find_atom("CB", "*") and len(res) > 5:
                ca = res.find_atom("CA", "*")
                d = np.linalg.norm(np.array(ca.pos.tolist()) - centre)
                if d < best_d:
                    best, best_d = residue_key(ch.name, res), d
    if best is None:
        raise ValueError(f"no residue of type {'/'.join(names)} with a side chain in the model")
    return best


def side_chain_positions(structure: gemmi.Structure, key: str | None = None) -> np.ndarray:
    """Positions of side-chain atoms beyond CB (of one residue, or of every residue)."""
    if key is not None:
        res = _find_residue(structure, key)
        return np.array([a.pos.tolist() for a in res if a.name not in SIDE_CHAIN_EXCLUDE]).reshape(-1, 3)
    return np.array([a.pos.tolist() for ch in structure[0] for r in ch for a in r
                     if a.name not in SIDE_CHAIN_EXCLUDE and r.name not in ("GLY", "ALA")]).reshape(-1, 3)


def main_chain_positions(structure: gemmi.Structure) -> np.ndarray:
    return np.array([a.pos.tolist() for a in _atoms(structure) if a.name in MAIN_CHAIN]).reshape(-1, 3)


def truncate_to_ala(structure: gemmi.Structure, key: str | None = None) -> gemmi.Structure:
    """A copy with the side chain of `key` (or of every residue: poly-Ala) cut back to CB and renamed ALA
    (glycines stay glycines)."""
    st = structure.clone()
    for ch in st[0]:
        for res in ch:
            if (key is None and res.name != "GLY") or (key is not None and residue_key(ch.name, res) == key):
                for i in reversed(range(len(res))):
                    if res[i].name not in SIDE_CHAIN_EXCLUDE:
                        del res[i]
                res.name = "ALA"
    return st


def mutate_to_trp(structure: gemmi.Structure, key: str) -> tuple[gemmi.Structure, np.ndarray]:
    """A copy with residue `key` replaced by a tryptophan: the side chain of a Trp of the model (or of the
    built-in template) superposed on the residue's N, CA, C, CB. Returns (model, positions of the added atoms
    beyond CB)."""
    template = None
    for ch in structure[0]:
        for res in ch:
            if res.name == "TRP" and residue_key(ch.name, res) != key and len(res) >= 14:
                template = [(a.name, *a.pos.tolist()) for a in res]
                break
        if template:
            break
    template = template or list(_TRP_TEMPLATE)
    tpl = {name: np.array(xyz, dtype=float) for name, *xyz in template}
    st = structure.clone()
    res = _find_residue(st, key)
    anchors = [n for n in ("N", "CA", "C", "CB") if res.find_atom(n, "*") and n in tpl]
    if len(anchors) < 3:
        raise ValueError(f"{key} lacks the backbone atoms needed to place a side chain")
    fixed = [gemmi.Position(*res.find_atom(n, "*").pos.tolist()) for n in anchors]
    moving = [gemmi.Position(*tpl[n]) for n in anchors]
    sup = gemmi.superpose_positions(fixed, moving)
    b = float(np.mean([a.b_iso for a in res]))
    for i in reversed(range(len(res))):
        if res[i].name not in SIDE_CHAIN_EXCLUDE:
            del res[i]
    added = []
    for name, xyz in tpl.items():
        if name in SIDE_CHAIN_EXCLUDE:
            continue
        a = gemmi.Atom()
        a.name = name
        a.element = gemmi.Element(name[0])
        p = gemmi.Position(sup.transform.apply(gemmi.Position(*xyz)))
        a.pos = p
        a.b_iso = b
        a.occ = 1.0
        res.add_atom(a)
        added.append(p.tolist())
    res.name = "TRP"
    return st, np.array(added)


def perturb_coordinates(structure: gemmi.Structure, rms: float, seed: int = 0) -> gemmi.Structure:
    """A copy with every atom moved by an independent Gaussian vector of RMS length `rms` Å (seeded)."""
    st = structure.clone()
    rng = np.random.default_rng(seed)
    atoms = list(_atoms(st))
    shifts = rng.normal(0.0, rms / np.sqrt(3.0), size=(len(atoms), 3))
    for a, d in zip(atoms, shifts, strict=True):
        a.pos = gemmi.Position(*(np.array(a.pos.tolist()) + d))
    return st


def sub_structure(structure: gemmi.Structure, keys: set) -> gemmi.Structure:
    """A copy with only the residues whose (chain, number, insertion code) is in `keys`."""
    st = structure.clone()
    for ch in st[0]:
        for i in reversed(range(len(ch))):
            if (ch.name, ch[i].seqid.num, ch[i].seqid.icode.strip()) not in keys:
                del ch[i]
    st.remove_empty_chains()
    return st


def add_residues(structure: gemmi.Structure, residues, chains, b: float) -> gemmi.Structure:
    """A copy with copies of `residues` added to `chains` (one chain name each) in sequence order, B set to `b`."""
    st = structure.clone()
    for res, chain in zip(residues, chains, strict=True):
        names = [c.name for c in st[0]]
        if chain not in names:
            st[0].add_chain(gemmi.Chain(chain))
        ch = st[0][chain]
        new = res.clone()
        for a in new:
            a.b_iso = b
        # keep residues in sequence order
        pos = next((i for i, r in enumerate(ch) if r.seqid.num > new.seqid.num), len(ch))
        ch.add_residue(new, pos)
    return st


def add_b(structure: gemmi.Structure, extra_b, b_global: float = 0.0) -> gemmi.Structure:
    """A copy with every atom's B raised by its entry of `extra_b` (file order) plus `b_global` (Å²)."""
    st = structure.clone()
    for a, extra in zip(_atoms(st), extra_b, strict=True):
        a.b_iso = float(a.b_iso + extra + b_global)
    return st



# ---------------------------------------------------------------------- partial models (hybrid reference)
#: how a partial model is made from a complete one: a whole chain removed, gaps spread over every chain, or one
#: compact region (a "domain")
PARTIAL_KINDS = ("chain", "gaps", "domain")


def residue_keys(structure: gemmi.Structure) -> list[tuple[str, int, str]]:
    """(chain, number, insertion code) of every residue of the first model, in file order."""
    return [(ch.name, r.seqid.num, r.seqid.icode.strip()) for ch in structure[0] for r in ch]


def removed_residues(structure: gemmi.Structure, kind: str, *, fraction: float = 0.2, gap: int = 8,
                     chain: str | None = None) -> set[tuple[str, int, str]]:
    """The residues a partial model of `kind` (:data:`PARTIAL_KINDS`) lacks:

    * ``chain``: every residue of `chain` (default: the smallest chain with at least 40 residues, else the
      smallest; a model of one chain has none to remove);
    * ``gaps``: in every chain, gaps of `gap` residues spread evenly along the chain, `fraction` of its residues
      in all (at least one gap per chain);
    * ``domain``: a compact region of `fraction` of the residues: those whose CA (else first atom) lies nearest
      the residue farthest from the centre of the model.
    """
    keys = residue_keys(structure)
    if kind == "chain":
        counts: dict[str, int] = {}
        for k in keys:
            counts[k[0]] = counts.get(k[0], 0) + 1
        if len(counts) < 2:
            raise ValueError("a partial model without a chain needs a model of at least two chains")
        if chain is None:
            big = {c: n for c, n in counts.items() if n >= 40} or counts
            chain = min(big, key=lambda c: (big[c], c))
        if chain not in counts:
            raise ValueError(f"chain {chain!r} is not in the model")
        return {k for k in keys if k[0] == chain}
    if kind == "gaps":
        out: set[tuple[str, int, str]] = set()
        for name in dict.fromkeys(k[0] for k in keys):
            ck = [k for k in keys if k[0] == name]
            if len(ck) <= gap:
                continue
            n_gaps = max(1, round(fraction * len(ck) / gap))
            starts = np.linspace(0, len(ck) - gap, n_gaps + 2)[1:-1].astype(int)
            for s in starts:
                out |= set(ck[s:s + gap])
        return out
    if kind == "domain":
        pos = []
        for ch in structure[0]:
            for r in ch:
                a = r.find_atom("CA", "*") or r[0]
                pos.append(a.pos.tolist())
        pos = np.array(pos)
        far = pos[np.argmax(np.linalg.norm(pos - pos.mean(axis=0), axis=1))]
        n = max(1, int(round(fraction * len(keys))))
        nearest = np.argsort(np.linalg.norm(pos - far, axis=1), kind="stable")[:n]
        return {keys[i] for i in nearest}
    raise ValueError(f"unknown partial model {kind!r}; one of {PARTIAL_KINDS}")


def partial_model(structure: gemmi.Structure, kind: str, **kw) -> tuple[gemmi.Structure, set]:
    """(the model without :func:`removed_residues` (`kind`, `kw`), the removed residues)."""
    removed = removed_residues(structure, kind, **kw)
    kept = set(residue_keys(structure)) - removed
    return sub_structure(structure, kept), removed
