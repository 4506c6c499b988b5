"""Shell matrices of the scaling modes (one layout) and the scale-factor rule.

Every mode sums per-coefficient values of a window's rfft half spectrum (N = w·w·(w//2+1) coefficients, rows in
C order of (kx, ky, kz)) into shells with one kind of matrix: a dense (N, S) matrix whose row k holds
coefficient k's weight in each shell (exact mode: its rfft multiplicity in its shell,
:func:`exact_shell_membership`). On the CPU it is stored by k_x slab (:class:`SlabMatrix`); the torch backend
uses the dense matrix itself. :func:`shell_factors` is the one rule that turns two shell profiles into scale
factors, with the power floor of :func:`power_floor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import shells

#: a window's map shell power at or below this fraction of w⁶·mean(map²) (the total power of a window of
#: average content) counts as empty: its factor is 0. float32 window transforms leave rounding power of about
#: 1e-14·N of that total in a shell of N coefficients (below 2e-10 for w ≤ 24), which would otherwise give
#: factors of 10⁵ and more wherever the map is flat (flattened or zeroed solvent); real shell power is many
#: orders of magnitude above it.
POWER_FLOOR_RELATIVE = 1e-9


# ------------------------------------------------------------------------------------------ shell matrices
class SlabMatrix:
    """A dense (N, S) matrix over the half spectrum (N = w·w·(w//2+1), rows in C order of (kx, ky, kz)),
    stored as one block per k_x slab restricted to the columns that slab uses.

    ``X @ M`` for X (rows, N) float32 becomes a sum of small products over the slabs, skipping the zero
    columns (most of them: a slab with |k_x| = a only reaches shells ≥ a)."""

    def __init__(self, dense: np.ndarray, w: int):
        dense = np.asarray(dense, dtype=np.float64)
        self.shape = dense.shape
        slab = w * (w // 2 + 1)
        self.blocks: list[tuple[slice, int, int, np.ndarray]] = []
        for start in range(0, dense.shape[0], slab):
            rows = slice(start, start + slab)
            used = np.flatnonzero(np.any(dense[rows] != 0, axis=0))
            if len(used) == 0:
                continue
            lo, hi = int(used[0]), int(used[-1]) + 1
            block = np.ascontiguousarray(dense[rows, lo:hi], dtype=np.float32)
            block.setflags(write=False)
            self.blocks.append((rows, lo, hi, block))

    def rmatmul(self, x: np.ndarray) -> np.ndarray:
        """x (rows, N) float32 @ this matrix → (rows, S) float64 (slab partial sums in float32)."""
        out = np.zeros((x.shape[0], self.shape[1]), dtype=np.float64)
        for rows, lo, hi, block in self.blocks:
            out[:, lo:hi] += x[:, rows] @ block
        return out


@dataclass(frozen=True)
class ShellScheme:
    """How one scaling mode turns a window pair's spectra into the centre value.

    profile: SlabMatrix (N, S) applied to each window's per-coefficient |F|² (kind "power") or |F| (kind
        "amplitude"), giving the window's shell profile;
    centre: SlabMatrix (N, S): row k, column s = weight of shell s's factor on coefficient k (multiplicity
        included); applied to Re(F_M(k)·phase(k)) and multiplied by `centre_scale` it gives each shell's
        contribution to the centre value;
    phase_re, phase_im: e^{2πi k·c/w} on the half spectrum, float32 (N,) (phase_im None when it is 0);
    kind: "power" → k_s = sqrt(P_model/P_map); "amplitude" → k_s = A_model/A_map; 0 where the map's profile
        is 0 or the ratio is not finite.
    """

    w: int
    profile: SlabMatrix
    centre: SlabMatrix
    phase_re: np.ndarray
    phase_im: np.ndarray | None
    centre_scale: float
    kind: str


def multiplicity(w: int) -> np.ndarray:
    """rfft multiplicity of every half-spectrum coefficient, flattened (N,)."""
    return np.broadcast_to(shells.rfft_multiplicity(w), (w, w, w // 2 + 1)).ravel()


def centre_phase_rows(w: int, centre: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Real and imaginary parts of e^{2πi k·c/w} over the half spectrum (float32, flattened); the imaginary
    part is None when it vanishes (even w with c = w/2: the phase is (−1)^(kx+ky+kz))."""
    if centre == shells.centre_index(w):
        ph = shells.centre_phase(w).ravel()
    else:
        f = np.fft.fftfreq(w) * w
        fz = np.fft.rfftfreq(w) * w
        ph = np.exp(2j * np.pi * centre * (f[:, None, None] + f[None, :, None] + fz[None, None, :]) / w)
        ph = ph.ravel()
    re = ph.real.astype(np.float32)
    im = ph.imag.astype(np.float32)
    if w % 2 == 0 and 2 * centre % w == 0:
        re = np.rint(re).astype(np.float32)  # exactly ±1
        im = None
    return re, im


def exact_shell_membership(w: int) -> np.ndarray:
    """(N, n_shells) float64: row k holds the rfft multiplicity of coefficient k in its exact-mode shell."""
    idx = shells.exact_shell_index(w).ravel()
    member = np.zeros((idx.size, shells.n_shells(w)))
    member[np.arange(idx.size), idx] = multiplicity(w)
    return member


@lru_cache(maxsize=16)
def exact_shell_scheme(w: int) -> ShellScheme:
    """Exact mode (docs/design.md) for the batched engine: shells of ``shells.exact_shell_index``, shell power
    with the rfft multiplicities, centre ⌊w/2⌋."""
    mat = SlabMatrix(exact_shell_membership(w), w)
    re, im = centre_phase_rows(w, shells.centre_index(w))
    return ShellScheme(w=w, profile=mat, centre=mat, phase_re=re, phase_im=im, centre_scale=1.0 / w**3,
                       kind="power")


def power_floor(emmap: np.ndarray, w: int) -> float:
    """The map shell power at or below which a window's shell counts as empty (:data:`POWER_FLOOR_RELATIVE`
    × w⁶ × the map's mean square over the box)."""
    a = np.asarray(emmap)
    # plane by plane: no float64 copy of the whole map (at 400³ that would be 0.5 GB on top of the peak)
    sum_square = sum(float(np.square(plane, dtype=np.float64).sum()) for plane in a)
    return POWER_FLOOR_RELATIVE * float(w) ** 6 * sum_square / a.size


def shell_factors(p_model: np.ndarray, p_map: np.ndarray, kind: str, floor: float = 0.0) -> np.ndarray:
    """Per-shell scale factors from the two profiles (float64, same shape); 0 where the map's profile is not
    above `floor` (:func:`power_floor`; 0 in compat mode, as LocScale 2) or the ratio is not finite."""
    p_map = np.asarray(p_map, dtype=np.float64)
    p_model = np.asarray(p_model, dtype=np.float64)
    ok = p_map > max(float(floor), 0.0)
    ratio = np.divide(p_model, p_map, out=np.zeros_like(p_map), where=ok)
    if kind == "power":
        k = np.sqrt(np.maximum(ratio, 0.0))
    elif kind == "amplitude":
        k = np.abs(ratio)
    else:
        raise ValueError(f"unknown scheme kind {kind!r}")
    k[~np.isfinite(k)] = 0.0
    return k


def scaled_values(p_map: np.ndarray, p_model: np.ndarray, contrib: np.ndarray, kind: str, floor: float,
                  scale: float) -> np.ndarray:
    """Centre values of shell-scaled windows: Σ_s k_s·contrib_s·`scale` per row, k from :func:`shell_factors`
    (profiles and per-shell centre contributions (n, S) float64 → (n,) float64)."""
    k = shell_factors(p_model, p_map, kind, floor)
    return np.einsum("ij,ij->i", k, contrib) * scale
