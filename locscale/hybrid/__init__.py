"""The hybrid reference: the model plus pseudo-atoms where the map holds significant density the model does not
explain.

LocScale scales each window's Fourier shells to those of the reference. Where the model has no atoms the reference
is empty, so density the model lacks is attenuated (and zeroed beyond the model's mask) exactly where the user still
has to build. The hybrid reference fills that density with pseudo-atoms, placed by the data's own noise statistics:

1. **Residual.** The model map (simulated from the model) is scaled to the map by one amplitude ``A`` and one
   B offset ``ΔB``, fitted by least squares over the Fourier shells from 10 Å to the resolution
   (``F_map ≈ A·exp(−ΔB s²/4)·F_model``). The difference ``F_map − A·exp(−ΔB s²/4)·F_model``, low-passed by a
   Gaussian whose amplitude is 1/2 at the resolution, is the density the model does not explain.
2. **Noise.** With half maps, the noise of their mean is measured from their half difference ``(h1 − h2)/2`` (for
   independent half-map noise of equal power it has the same distribution), passed through the same filter; σ is its
   RMS over the voxels tested. With one map, σ is the RMS deviation below the median of the residual over the
   voxels tested (unexplained density only adds positive values, so the lower half is noise). The solvent level
   μ is the median of the residual over those voxels, recomputed without values above μ + 3σ until it is stable.
   A map whose solvent was flattened (masked maps) has no measurable noise and is refused.
3. **Test.** The voxels tested are those farther than ``exclusion`` (3 Å) from every model atom. Each gets
   z = (r − μ)/σ and a one-sided Gaussian p-value; the Benjamini–Hochberg procedure at false discovery rate
   ``fdr`` (default 0.01: at most 1 % of the voxels declared unexplained density are expected to be noise) gives
   the z threshold. On pure noise the procedure declares nothing with probability ≥ 1 − fdr, so a complete model
   normally gets no pseudo-atom and its map is unchanged. Where much density is unexplained, about `fdr` of the
   voxels declared are noise, scattered in small clusters over the solvent; so only clusters (26-connected) larger
   than the largest one the noise alone forms above the same threshold are kept -- the noise being the half maps'
   half difference, or without half maps the residual below the solvent level. The voxels kept form the
   *unexplained-density mask*.
4. **Placement (matching pursuit).** Starting from the residual, a pseudo-atom is put on the highest voxel of the
   mask above the threshold and its footprint (one atom of the pseudo-atom B, through the same scale, B offset and
   filter) is subtracted; this repeats until no voxel of the mask is above the threshold. The pseudo-atoms thus carry
   the *amount* of unexplained density, not only its extent, and stop where what is left is no longer significant.
   They sit on voxel centres, at least :data:`MIN_DISTANCE` apart, as oxygen atoms (residue HOH) of one chain of
   their own.
5. **B-factors.** By default every pseudo-atom takes the median B of the model's atoms
   (:func:`pseudo_atom_b`): only the relative B is fixed by the data, so the model's own level is the one to
   match. Measured on phantoms (docs/science.md, "Density the model does not explain"), it gave maps as good as
   B refined for the pseudo-atoms with the model held (:func:`refine_pseudo_atom_b`): a refinement against the map
   lets pseudo-atoms, which stand at approximate positions, absorb their position errors into higher B.

Pseudo-atoms only shape the reference and the mask; they never enter a model file of the user or of a cycle.
"""

from .pseudo_atoms import (
    MIN_DISTANCE,
    PSEUDO_CHAINS,
    add_pseudo_atom_map,
    mask_rule,
    merge,
    place_pseudo_atoms,
    pseudo_atom_b,
    pseudo_atom_b_values,
    pseudo_atom_map,
    pseudo_atom_structure,
    refine_pseudo_atom_b,
    set_pseudo_atom_b,
)
from .reference import HybridReference, hybrid_reference
from .unexplained import (
    DEFAULT_FDR,
    EXCLUSION,
    FLATTENED_FRACTION,
    SCALE_FIT_LOW,
    NoiseNotMeasurable,
    UnexplainedDensity,
    fit_model_scale,
    flat_fraction,
    lowpass,
    unexplained_density,
)

__all__ = [
    "DEFAULT_FDR",
    "EXCLUSION",
    "FLATTENED_FRACTION",
    "HybridReference",
    "MIN_DISTANCE",
    "NoiseNotMeasurable",
    "PSEUDO_CHAINS",
    "SCALE_FIT_LOW",
    "UnexplainedDensity",
    "add_pseudo_atom_map",
    "fit_model_scale",
    "flat_fraction",
    "hybrid_reference",
    "lowpass",
    "mask_rule",
    "merge",
    "place_pseudo_atoms",
    "pseudo_atom_b",
    "pseudo_atom_b_values",
    "pseudo_atom_map",
    "pseudo_atom_structure",
    "refine_pseudo_atom_b",
    "set_pseudo_atom_b",
    "unexplained_density",
]
