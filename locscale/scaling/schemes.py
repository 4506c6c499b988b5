"""Shell matrices of the scaling modes (one layout), the scale-factor rule, and the tapered mode's window
weights, soft shells and noise fractions.

Every mode sums per-coefficient values of a window's rfft half spectrum (N = w·w·(w//2+1) coefficients, rows in
C order of (kx, ky, kz)) into shells with one kind of matrix: a dense (N, S) matrix whose row k holds
coefficient k's weight in each shell (exact mode: its rfft multiplicity in its shell,
:func:`exact_shell_membership`). On the CPU it is stored by k_x slab (:class:`SlabMatrix`); the torch backend
uses the dense matrix itself. :func:`shell_factors` is the one rule that turns two shell profiles into scale
factors, with the power floor of :func:`power_floor`.

The tapered mode (``locscale.scaling.tapered``) goes beyond the paper's eq. 2 in three ways, each defined here:
windows multiplied by a Hann taper (:func:`hann_taper`), shells that overlap as hat functions of the radius, so
the scale factors are interpolated linearly across frequency (:func:`soft_shell_weights`), and factors multiplied
by C, a shell's signal fraction measured in the window (:func:`noise_fraction`).
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


# ------------------------------------------------------------------------------------------ tapered mode
def hann_taper(w: int) -> np.ndarray:
    """The window weights of the tapered mode: ∏_axes cos²(π (u − c)/w) over the w³ window (u = 0 … w−1,
    c = ⌊w/2⌋ its centre, where the weight is 1), float64 (w, w, w), read-only."""
    return _hann_taper(int(w))


@lru_cache(maxsize=16)
def _hann_taper(w: int) -> np.ndarray:
    g = np.cos(np.pi * (np.arange(w) - shells.centre_index(w)) / w) ** 2
    out = g[:, None, None] * g[None, :, None] * g[None, None, :]
    out.setflags(write=False)
    return out


def soft_shell_weights(w: int, half: bool = True) -> np.ndarray:
    """Soft (overlapping) shells: (S, …) weights φ_s(k) = max(0, 1 − |min(|k|, S−1) − s|) of every coefficient
    (rfft half spectrum if `half`, else the full w³ spectrum) for s = 0 … S−1 = ⌊w/2⌋, |k| the wrapped radius in
    Fourier pixels. Hat functions centred on the exact-mode shells: they sum to 1 at every coefficient (a
    partition of unity), shell 0 is the DC term alone, and radii beyond ⌊w/2⌋ (the cube's corners) belong to the
    last shell, as in exact mode. A factor per shell applied with these weights is the factors interpolated
    linearly at each coefficient's radius. Read-only."""
    return _soft_shell_weights(int(w), bool(half))


@lru_cache(maxsize=32)
def _soft_shell_weights(w: int, half: bool) -> np.ndarray:
    n = shells.n_shells(w)
    r = np.minimum(shells.wrapped_radius(w, half), n - 1)
    out = np.stack([np.maximum(0.0, 1.0 - np.abs(r - s)) for s in range(n)])
    out.setflags(write=False)
    return out


@lru_cache(maxsize=16)
def soft_shell_membership(w: int) -> np.ndarray:
    """(N, S) float64: row k holds coefficient k's soft-shell weights times its rfft multiplicity (profiles of
    the tapered mode: Σ_k member[k, s]·|F(k)|² is shell s's power over the whole spectrum). Read-only."""
    phi = soft_shell_weights(w, half=True).reshape(shells.n_shells(w), -1).T
    out = np.ascontiguousarray(phi * multiplicity(w)[:, None])
    out.setflags(write=False)
    return out


def slab_matrix(member: np.ndarray, w: int) -> SlabMatrix:
    """The :class:`SlabMatrix` of a read-only (N, S) shell matrix (cached by the array's identity, so the cached
    matrices of :func:`soft_shell_membership` are sliced into slabs once)."""
    key = (id(member), int(w))
    hit = _SLABS.get(key)
    if hit is None or hit[0] is not member:
        if len(_SLABS) >= 32:
            _SLABS.clear()
        hit = (member, SlabMatrix(member, w))
        _SLABS[key] = hit
    return hit[1]


_SLABS: dict[tuple[int, int], tuple[np.ndarray, SlabMatrix]] = {}


def noise_fraction(p_map: np.ndarray, p_signal: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """C = P_signal / P_map per shell, clipped to [0, 1]: the fraction of a window shell's power that is signal
    (0 where the map's power is not above `floor`). With half maps, P_signal is the windows' cross power
    Re Σ F₁·F₂* (each half holds the signal and independent noise, so its expectation is the signal power of
    the average) and P_map the power of the average; from the solvent, P_signal = P_map − the expected noise
    power."""
    p_map = np.asarray(p_map, dtype=np.float64)
    p_signal = np.asarray(p_signal, dtype=np.float64)
    ok = p_map > max(float(floor), 0.0)
    c = np.divide(p_signal, p_map, out=np.zeros_like(p_map), where=ok)
    return np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)
