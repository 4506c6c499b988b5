"""Phantoms with a known truth: simulated half maps built from a real atomic model (docs/phantoms.md).

A phantom is made of

* the **truth**: the model's density (electron form factors, the atoms' B-factors, one uniform ``truth_b``, or a
  radial gradient ``truth_b_gradient`` = (B at the centre, B at the edge, power) that models flexibility the
  reference model describes) simulated on the grid, with no noise and no extra blur -- what an ideal sharpening
  would recover. The truth keeps its atoms' own B variation: a model with refined B-factors can describe it;
* the **signal**: the same atoms with every B raised by a global ``b_global`` (the reconstruction's falloff: the
  blur that sharpening should remove) and, optionally, by a spatially varying extra ΔB(atom) (``b_core`` →
  ``b_periphery``, or set per chain; 0 by default). Adding ΔB to an atom's B convolves that atom's density with a
  Gaussian, so this is a spatially varying blur that is exact atom by atom. A *realistic* phantom (docs/design.md)
  has ΔB = 0: the map's local variation of sharpness is the truth's own. ΔB > 0 on a uniform-B truth is a
  **stress case**: it counts local blur as something to remove, which no atomic-B reference can do;
* two **half maps** = signal + independent coloured Gaussian noise. The noise amplitude falls like a B-factor
  ``noise_b`` (power ∝ exp(−noise_b s²/2); 0 = white), and its power is set shell by shell so that the expected
  half-map FSC, S(s)/(S(s)+N(s)), equals ``fsc_threshold`` (0.143) at s = 1/resolution. Each noise realisation is
  then rescaled per Fourier shell to exactly the target shell power, so the only departure of the measured FSC
  from the expected one comes from the signal × noise and noise × noise cross terms (≈ 1/√(coefficients in
  the shell)).
* optionally an **incomplete model**: residues removed (a contiguous stretch of ``remove_fraction`` of the
  residues, or whole chains) from the model handed to the user; the maps still contain them.

Everything is seeded (``numpy.random.default_rng`` streams spawned from one ``SeedSequence``), so the same
inputs and seed give byte-identical files. Files are named ``SIMULATED_*`` and carry "SIMULATED" in their
MRC header label; a JSON file records every parameter, measured quantity and file checksum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from ..errors import LocScaleInputError
from ..mapio import Map, write_map
from ..outputs import atomic_output

PREFIX = "SIMULATED"
#: the files a phantom writes, kind -> name after the prefix
FILES = {"truth": "_truth.mrc", "half1": "_half1.mrc", "half2": "_half2.mrc", "full": "_full.mrc",
         "signal": "_signal.mrc", "model_true": "_model_true.pdb", "model": "_model.pdb", "json": "_phantom.json"}


def phantom_files(outdir: str | Path, prefix: str = PREFIX) -> dict[str, Path]:
    """The paths a phantom with `prefix` writes in `outdir` (kind -> path). The prefix must contain "SIMULATED"
    (so the files cannot pass for data) and be a plain file-name prefix: no folder part, which would put the
    files outside `outdir`."""
    if "SIMULATED" not in prefix:
        raise LocScaleInputError(f"phantom file prefix {prefix!r} does not say SIMULATED",
                                 "use a prefix containing 'SIMULATED' so the files cannot pass for data")
    if Path(prefix).name != prefix or prefix in (".", "..") or "/" in prefix or "\\" in prefix:
        raise LocScaleInputError(f"phantom file prefix {prefix!r} contains a folder part: the files would be "
                                 "written outside the output folder",
                                 "give a plain prefix (e.g. SIMULATED_hb) and choose the folder with -o")
    return {kind: Path(outdir) / f"{prefix}{suffix}" for kind, suffix in FILES.items()}


@dataclass
class PhantomResult:
    """Everything a phantom is made of (maps on one grid, models, and a JSON-ready description)."""

    truth: Map
    signal: Map
    half1: Map
    half2: Map
    structure: gemmi.Structure  # the complete true model (coordinates and truth B-factors)
    model: gemmi.Structure  # the model handed to the user (parts removed if requested)
    delta_b: np.ndarray  # per-atom extra blur ΔB (Å²), in the atom order of `structure`, without b_global
    removed: list[tuple[str, int, str]] = field(default_factory=list)  # (chain, seq number, insertion code)
    info: dict = field(default_factory=dict)

    @property
    def full(self) -> Map:
        """The full map: the mean of the two half maps."""
        return self.half1.like(0.5 * (self.half1.data + self.half2.data))

    def write(self, outdir: str | Path, prefix: str = PREFIX) -> dict[str, Path]:
        """Write the maps, models and the JSON description into `outdir`; returns {kind: path}.

        Names are ``<prefix>_truth.mrc``, ``_half1.mrc``, ``_half2.mrc``, ``_full.mrc``, ``_signal.mrc``,
        ``_model_true.pdb`` (complete model, truth B), ``_model.pdb`` (the model handed to the user) and
        ``_phantom.json``. `prefix` must contain "SIMULATED".
        """
        from ..models import write_model

        files = phantom_files(outdir, prefix)
        Path(outdir).mkdir(parents=True, exist_ok=True)
        seed = self.info.get("seed")
        maps = {"truth": self.truth, "half1": self.half1, "half2": self.half2, "full": self.full,
                "signal": self.signal}
        paths: dict[str, Path] = {}
        for kind, m in maps.items():
            write_map(files[kind], m, label=f"SIMULATED phantom {kind} seed={seed} (locscale phantom)")
            paths[kind] = files[kind]
        for kind, st in (("model_true", self.structure), ("model", self.model)):
            write_model(st, files[kind])
            paths[kind] = files[kind]
        info = dict(self.info)
        info["files"] = {k: p.name for k, p in paths.items()}
        info["sha256"] = {k: _sha256(p) for k, p in paths.items()}
        paths["json"] = files["json"]
        with atomic_output(paths["json"]) as tmp:
            Path(tmp).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return paths


# ---------------------------------------------------------------------- model preparation
def crop_model(structure: gemmi.Structure, chains: list[str] | None = None, *, protein_only: bool = True,
               centre: np.ndarray | None = None, radius: float | None = None) -> gemmi.Structure:
    """A copy of the first model restricted to `chains` (all when None), without waters/ligands/hydrogens when
    `protein_only`, and (when `radius` is given) to the residues with an atom within `radius` Å of `centre`
    (default: the centre of the selected atoms)."""
    st = structure.clone()
    while len(st) > 1:
        del st[len(st) - 1]
    if chains:
        present = {ch.name for ch in st[0]}
        missing = [c for c in chains if c not in present]
        if missing:
            raise LocScaleInputError(f"chain(s) {', '.join(missing)} not in the model (it has "
                                     f"{', '.join(sorted(present))})", "choose chains the model contains")
        for i in reversed(range(len(st[0]))):
            if st[0][i].name not in chains:
                del st[0][i]
    st.remove_hydrogens()
    if protein_only:
        st.remove_ligands_and_waters()
    st.remove_alternative_conformations()
    if radius is not None:
        xyz = _positions(st)
        c = xyz.mean(axis=0) if centre is None else np.asarray(centre, dtype=float)
        for ch in st[0]:
            for i in reversed(range(len(ch))):
                pos = np.array([a.pos.tolist() for a in ch[i]])
                if np.min(np.linalg.norm(pos - c, axis=1)) > radius:
                    del ch[i]
    st.remove_empty_chains()
    if sum(len(r) for ch in st[0] for r in ch) == 0:
        raise LocScaleInputError("no atoms left after cropping the model", "select other chains or a larger radius")
    st.setup_entities()
    return st


def box_around_model(structure: gemmi.Structure, size: int | tuple[int, int, int], apix: float) -> Map:
    """An empty map of `size` voxels of `apix` Å whose centre is the centre of the model's bounding box.

    The origin is a whole number of voxels (so MRC nstart holds it). Raises when the model does not fit with
    a margin of at least 2 Å on every side.
    """
    shape = np.broadcast_to(np.asarray(size, dtype=int), (3,))
    xyz = _positions(structure)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    centre = 0.5 * (lo + hi)
    origin = np.round((centre - 0.5 * (shape - 1) * apix) / apix) * apix
    end = origin + (shape - 1) * apix
    if np.any(lo - origin < 2.0) or np.any(end - hi < 2.0):
        need = np.ceil((hi - lo + 4.0) / apix).astype(int) + 1
        raise LocScaleInputError(f"the model ({np.round(hi - lo, 1).tolist()} Å) does not fit a "
                                 f"{shape.tolist()}-voxel box of {apix} Å with a 2 Å margin",
                                 f"use a box of at least {need.tolist()} voxels, a larger voxel size, or crop the "
                                 "model (--chains / --radius)")
    return Map(np.zeros(tuple(shape), dtype=np.float32), voxel_size=apix, origin=origin)


def b_gradient(structure: gemmi.Structure, b_core: float = 0.0, b_periphery: float = 100.0, *,
               power: float = 1.0, chain_b: dict[str, float] | None = None) -> np.ndarray:
    """Per-atom extra blur ΔB (Å²), in atom reading order.

    Radial (default): ΔB = b_core + (b_periphery − b_core)·(r / r_max)^power, r = distance from the centre of
    mass of the atoms, r_max the largest such distance. Per chain: `chain_b` maps chain name → ΔB (chains not
    named get b_core).
    """
    xyz = _positions(structure)
    if chain_b:
        names = [ch.name for ch in structure[0] for r in ch for _ in r]
        return np.array([float(chain_b.get(n, b_core)) for n in names])
    r = np.linalg.norm(xyz - xyz.mean(axis=0), axis=1)
    t = r / max(float(r.max()), 1e-6)
    return b_core + (b_periphery - b_core) * t ** power


def remove_residues(structure: gemmi.Structure, fraction: float = 0.0, chains: list[str] | None = None,
                    seed: int = 0) -> tuple[gemmi.Structure, list[tuple[str, int, str]]]:
    """A copy without whole `chains` and without one contiguous stretch of `fraction` of the remaining
    residues (seeded start); returns (incomplete model, removed residue ids)."""
    st = structure.clone()
    removed: list[tuple[str, int, str]] = []
    for ch in st[0]:
        if chains and ch.name in chains:
            removed += [(ch.name, r.seqid.num, r.seqid.icode.strip()) for r in ch]
    if chains:
        for i in reversed(range(len(st[0]))):
            if st[0][i].name in chains:
                del st[0][i]
    if fraction > 0:
        ids = [(ch.name, r.seqid.num, r.seqid.icode.strip()) for ch in st[0] for r in ch]
        n_remove = int(round(fraction * len(ids)))
        if n_remove >= len(ids):
            raise LocScaleInputError(f"removing {fraction:.0%} of the residues leaves no model",
                                     "use a smaller remove fraction")
        if n_remove > 0:
            start = int(np.random.default_rng(seed).integers(0, len(ids) - n_remove + 1))
            drop = set(ids[start:start + n_remove])
            for ch in st[0]:
                for i in reversed(range(len(ch))):
                    key = (ch.name, ch[i].seqid.num, ch[i].seqid.icode.strip())
                    if key in drop:
                        del ch[i]
            removed += ids[start:start + n_remove]
    st.remove_empty_chains()
    if sum(len(r) for ch in st[0] for r in ch) == 0:
        raise LocScaleInputError("removing these parts leaves no model", "remove fewer residues or chains")
    return st, removed


# ---------------------------------------------------------------------- the phantom
def make_phantom(structure: gemmi.Structure, like: Map | tuple[int, float], seed: int = 0, *,
                 resolution: float = 3.5, fsc_threshold: float = 0.143, b_global: float = 100.0,
                 b_core: float = 0.0, b_periphery: float = 0.0, gradient_power: float = 1.0,
                 chain_b: dict[str, float] | None = None, truth_b: float | None = None,
                 truth_b_gradient: tuple[float, float, float] | None = None, noise_b: float = 50.0,
                 remove_fraction: float = 0.0, remove_chains: list[str] | None = None,
                 source: str | None = None) -> PhantomResult:
    """Build a phantom from `structure` on the grid of `like` (a Map, or (box voxels, voxel size Å) to build a
    box around the model). See the module docstring for what each part is.

    `resolution` is where the expected half-map FSC equals `fsc_threshold`. `truth_b` (if given) sets every
    atom's truth B to one value; `truth_b_gradient` = (b_centre, b_edge, power) sets it to
    ``b_centre + (b_edge − b_centre)·(r/r_max)^power`` (r from the atoms' centre); otherwise the model's B-factors
    are the truth.
    """
    from .. import metrics
    from ..simulate import simulate_model_map

    if not 0 < fsc_threshold < 1:
        raise LocScaleInputError(f"FSC threshold {fsc_threshold} is not between 0 and 1", "use e.g. 0.143")
    if not 0 <= remove_fraction < 1:
        raise LocScaleInputError(f"remove fraction {remove_fraction} is not in [0, 1)", "use e.g. 0.3")
    grid = box_around_model(structure, like[0], like[1]) if isinstance(like, tuple) else like
    apix = grid.apix
    if resolution < 2 * apix:
        raise LocScaleInputError(f"resolution {resolution} Å is finer than Nyquist ({2 * apix:.3f} Å)",
                                 f"request a resolution ≥ {2 * apix:.3f} Å or use a smaller voxel size")
    if truth_b is not None and truth_b_gradient is not None:
        raise LocScaleInputError("both a uniform truth B and a truth B gradient were given",
                                 "give one of truth_b (--truth-b) or truth_b_gradient (--truth-b-gradient)")
    truth_st = structure.clone()
    if truth_b is not None:
        for a in _atoms(truth_st):
            a.b_iso = float(truth_b)
    if truth_b_gradient is not None:
        t_core, t_edge, t_power = (float(v) for v in truth_b_gradient)
        tb = b_gradient(truth_st, t_core, t_edge, power=t_power)
        if np.any(tb < 0):
            raise LocScaleInputError(f"truth B gradient {truth_b_gradient} gives negative B",
                                     "give B values ≥ 0 at the centre and the edge")
        for a, b in zip(_atoms(truth_st), tb, strict=True):
            a.b_iso = float(b)
    dB = b_gradient(truth_st, b_core, b_periphery, power=gradient_power, chain_b=chain_b)
    if np.any(dB + b_global + np.array([a.b_iso for a in _atoms(truth_st)]) < 0):
        raise LocScaleInputError("the blur makes some atom's B negative", "use b_core/b_global ≥ 0")
    blurred = truth_st.clone()
    for a, extra in zip(_atoms(blurred), dB, strict=True):
        a.b_iso = float(a.b_iso + extra + b_global)

    truth = simulate_model_map(truth_st, grid)
    signal = simulate_model_map(blurred, grid)

    seeds = np.random.SeedSequence(seed).spawn(3)
    s_target = 1.0 / resolution
    sigma2, expected = _noise_power(signal.data, apix, s_target, fsc_threshold, noise_b)
    n1 = _coloured_noise(grid.shape, apix, sigma2, noise_b, np.random.default_rng(seeds[0]))
    n2 = _coloured_noise(grid.shape, apix, sigma2, noise_b, np.random.default_rng(seeds[1]))
    half1 = grid.like(signal.data + n1)
    half2 = grid.like(signal.data + n2)

    model, removed = remove_residues(truth_st, remove_fraction, remove_chains,
                                     seed=int(seeds[2].generate_state(1)[0]))
    measured = metrics.fsc(half1.data, half2.data, apix)
    measured_res = float(metrics.resolution_at(measured, fsc_threshold))
    truth_bs = np.array([a.b_iso for a in _atoms(truth_st)])
    chains = [ch.name for ch in truth_st[0]]
    chain_names = [ch.name for ch in truth_st[0] for r in ch for _ in r]
    info = {
        "what": "SIMULATED phantom (locscale phantom): truth, blurred signal, half maps with coloured noise",
        "seed": int(seed),
        "source_model": source,
        "chains": chains,
        "n_atoms": int(len(truth_bs)),
        "n_residues": int(sum(len(ch) for ch in truth_st[0])),
        "grid": {"shape": list(grid.shape), "voxel_size": [float(v) for v in grid.voxel_size],
                 "origin": [float(o) for o in grid.origin]},
        "truth": {"b_factors": ("uniform" if truth_b is not None else "radial gradient" if truth_b_gradient
                                else "the model's"),
                  "truth_b": truth_b,
                  "truth_b_gradient": None if truth_b_gradient is None else [float(v) for v in truth_b_gradient],
                  "b_mean": float(truth_bs.mean()), "b_min": float(truth_bs.min()),
                  "b_max": float(truth_bs.max())},
        "blur": {"kind": ("realistic: global falloff only" if float(dB.max()) == 0 and float(dB.min()) == 0
                          else "stress case: extra local blur on top of the global falloff"),
                 "b_global": float(b_global),
                 "gradient": "per chain" if chain_b else "radial (core to periphery)",
                 "b_core": float(b_core), "b_periphery": float(b_periphery), "power": float(gradient_power),
                 "chain_b": chain_b,
                 "delta_b_mean_per_chain": {c: float(np.mean(dB[np.array(chain_names) == c])) for c in chains},
                 "delta_b_min": float(dB.min()), "delta_b_max": float(dB.max())},
        "noise": {"kind": "Gaussian, independent per half map, power ∝ exp(-noise_b s²/2), set per shell",
                  "noise_b": float(noise_b), "sigma2_per_coefficient_at_s0": float(sigma2),
                  "fsc_threshold": float(fsc_threshold), "requested_resolution": float(resolution),
                  "expected_fsc_at_resolution": float(expected),
                  "measured_resolution": measured_res},
        "removed": {"fraction": float(remove_fraction), "chains": list(remove_chains or []),
                    "n_residues": len(removed),
                    "residues": [f"{c}/{n}{i}" for c, n, i in removed]},
    }
    for st_, what in ((truth_st, "true model"), (model, "model handed out")):
        st_.info["_struct.title"] = f"SIMULATED phantom {what} (locscale phantom, seed {seed})"
        st_.info["_struct_keywords.pdbx_keywords"] = "SIMULATED"
    return PhantomResult(truth=truth, signal=signal, half1=half1, half2=half2, structure=truth_st, model=model,
                         delta_b=dB, removed=removed, info=info)


# ---------------------------------------------------------------------- noise
def _noise_shape(s2: np.ndarray, noise_b: float) -> np.ndarray:
    """Relative noise power per coefficient at s² (1/Å²): exp(−noise_b s²/2) (amplitude falls like B)."""
    return np.exp(-0.5 * noise_b * s2)


def _noise_power(signal: np.ndarray, apix: float, s_target: float, threshold: float,
                 noise_b: float) -> tuple[float, float]:
    """Noise power per coefficient at s = 0 (σ²) that puts the expected FSC S/(S+N) at `threshold` at
    `s_target`; also returns that expected FSC (== threshold up to interpolation).

    S(s) is the signal's mean power per coefficient in the one-voxel shells of ``locscale.metrics``,
    interpolated log-linearly between shell centres. The expected FSC must stay clearly above the threshold
    (by 3 standard errors) in every shell before the one holding `s_target`, else noise could make an earlier
    crossing: when the signal's spectrum dips more steeply than the noise colour, no σ² can do both, and this
    raises."""
    from ..metrics import coefficient_shells, radial_profile, shell_sums

    freq, mean_power = radial_profile(signal, apix, power=True)
    ok = np.isfinite(mean_power) & (mean_power > 0) & (freq > 0)
    S = float(np.exp(np.interp(s_target, freq[ok], np.log(mean_power[ok]))))
    eta = float(_noise_shape(np.array(s_target ** 2), noise_b))
    k = 1.0 / threshold - 1.0
    sigma2 = S * k / eta
    # every shell more than one shell below s_target must keep the expected FSC 3 standard errors
    # ((1 − FSC²)/√n) above the threshold, so that noise cannot make an earlier crossing
    width = freq[1] - freq[0]
    before = ok & (freq < s_target - width)
    n = shell_sums(np.ones(coefficient_shells(signal.shape, apix)[0].shape), signal.shape, apix)[before]
    fsc_min = np.minimum(threshold + 3 * (1 - threshold ** 2) / np.sqrt(np.maximum(n, 1)), 0.999)
    limit = mean_power[before] * (1 / fsc_min - 1) / _noise_shape(freq[before] ** 2, noise_b)
    if before.any() and sigma2 > limit.min():
        d_early = 1.0 / freq[before][np.argmin(limit)]
        raise LocScaleInputError(
            f"with noise colour noise_b = {noise_b:g} Å² the half-map FSC would come within noise of {threshold} "
            f"at {d_early:.2f} Å, before the requested {1 / s_target:.2f} Å (the signal's spectrum dips there)",
            "use whiter or bluer noise (a smaller or negative --noise-b: noise power ∝ exp(-noise_b s²/2)), "
            "or request another resolution")
    return sigma2, S / (S + sigma2 * eta)


def _coloured_noise(shape, apix: float, sigma2: float, noise_b: float, rng: np.random.Generator) -> np.ndarray:
    """Real-space Gaussian noise with power per coefficient σ²·exp(−noise_b s²/2) (unnormalised numpy FFT, as
    in `_noise_power`), rescaled in every one-voxel shell up to Nyquist to exactly the target shell power."""
    from ..metrics import coefficient_shells, shell_sums

    shape = tuple(int(n) for n in shape)
    white = rng.standard_normal(shape)
    N = np.fft.rfftn(white)
    shell, s2 = coefficient_shells(shape, apix)
    target = sigma2 * _noise_shape(s2, noise_b)
    N *= np.sqrt(target / float(np.prod(shape)))  # E|white(k)|² = number of voxels
    got = shell_sums(np.abs(N) ** 2, shape, apix)
    want = shell_sums(target, shape, apix)
    gain = np.sqrt(np.where(got > 0, want / np.where(got > 0, got, 1.0), 1.0))
    N *= np.where(shell >= 0, gain[np.maximum(shell, 0)], 1.0)
    return np.fft.irfftn(N, s=shape, axes=(0, 1, 2)).astype(np.float32)


# ---------------------------------------------------------------------- helpers
def _atoms(structure: gemmi.Structure):
    return [a for ch in structure[0] for r in ch for a in r]


def _positions(structure: gemmi.Structure) -> np.ndarray:
    xyz = np.array([a.pos.tolist() for a in _atoms(structure)], dtype=float)
    if xyz.size == 0:
        raise LocScaleInputError("the model has no atoms", "give a model with atoms")
    return xyz


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_configured_phantom(model_path, settings: dict, outdir, expected: dict | None = None) -> PhantomResult:
    """The experiments' phantom step: crop `model_path` as `settings` (a ``phantoms`` entry of the experiments
    config) says, simulate the phantom and write its files into `outdir`; `expected` ({name: path}) must match the
    files written (the rule's outputs)."""
    from ..models import read_model

    p = settings
    st = crop_model(read_model(model_path), p.get("chains"), radius=p.get("radius"))
    # the settings given; make_phantom's own defaults for the others (the one place they are written)
    given = {k: p[k] for k in ("truth_b", "truth_b_gradient", "chain_b") if p.get(k) is not None}
    given.update(remove_chains=p.get("remove_chains") or None)
    given.update({k: float(p[k]) for k in ("b_core", "b_periphery", "noise_b", "remove_fraction") if k in p})
    ph = make_phantom(st, (int(p["box"]), float(p["apix"])), int(p["seed"]), resolution=float(p["resolution"]),
                      b_global=float(p["b_global"]), source=str(model_path), **given)
    paths = ph.write(Path(outdir))
    wrong = [k for k, v in (expected or {}).items() if Path(v) != paths[k]]
    if wrong:
        raise RuntimeError(f"phantom files named differently than the rule expects: {wrong}")
    return ph
