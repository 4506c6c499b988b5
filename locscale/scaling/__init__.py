"""LocScale's local amplitude scaling in every mode, and the one dispatcher over them.

Modules, each importing only those above it in this list (``tests/test_architecture.py`` checks there is no
import loop):

* ``schemes``: shell matrices (one layout) and the scale-factor rule;
* ``engine``: FFT backend, batch sizing and the threaded window engine; input checks;
* ``grid``: the coarse node grid and trilinear interpolation (shared with ``locscale.localres``);
* ``backends``: numpy and torch implementations of the heavy steps (transform windows, box means, convolve a
  shell);
* ``exact``, ``near_exact`` (near-exact and fast), ``compat``: the modes; ``tapered`` (the default, beyond the
  paper: tapered windows, soft shells, noise weights) on near-exact's skeleton;
* this package: :data:`MODES` and :func:`local_scale`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import LocScaleInputError
from .backends import get_backend
from .compat import local_scale_compat
from .engine import check_inputs
from .exact import local_scale_exact
from .near_exact import local_scale_fast, local_scale_near_exact
from .tapered import local_scale_tapered


@dataclass(frozen=True)
class Mode:
    """One scaling mode: its function, whether it takes a node-grid `stride`, whether it runs on a torch
    device, whether it computes the paper's eq. 2 (exact, near-exact, fast), and whether it weights shells by
    their noise (takes the half maps: tapered)."""

    function: Callable[..., np.ndarray]
    strided: bool
    gpu: bool
    paper: bool
    summary: str
    noise_weights: bool = False


#: every scaling mode, by the name the CLI, the workflow config and :func:`local_scale` use
MODES: dict[str, Mode] = {
    "tapered": Mode(local_scale_tapered, strided=True, gpu=True, paper=False, noise_weights=True,
                    summary="beyond eq. 2: Hann-tapered windows, soft shells, noise weights from the half maps "
                            "(or the solvent); near-exact arithmetic"),
    "exact": Mode(local_scale_exact, strided=False, gpu=True, paper=True,
                  summary="eq. 2 with two window FFTs per masked voxel"),
    "near-exact": Mode(local_scale_near_exact, strided=True, gpu=True, paper=True,
                       summary="eq. 2 with exact shell sums and scale factors on a grid of stride ~w/6"),
    "fast": Mode(local_scale_fast, strided=True, gpu=True, paper=True,
                 summary="screening: stride ~w/3 and a low-rank fit across shells"),
    "compat": Mode(local_scale_compat, strided=False, gpu=False, paper=False,
                   summary="LocScale 2.4.1's arithmetic"),
}


def check_mode(mode: str) -> Mode:
    """The :data:`MODES` entry of `mode`, or a LocScaleInputError listing the modes."""
    if mode not in MODES:
        raise LocScaleInputError(f"unknown LocScale mode {mode!r}", f"choose one of {', '.join(MODES)}")
    return MODES[mode]


def local_scale(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                mode: str = "exact", device: str | None = None, **kw) -> np.ndarray:
    """LocScale `emmap` against `modelmap` in one of :data:`MODES`; arrays in, float32 array out (0 outside
    the mask).

    `device` None or "cpu" runs the numpy backend; any other device (e.g. "cuda") the torch backend
    (``backends.TorchBackend``; tapered, exact, near-exact and fast). `kw` goes to the mode's function
    (batch_size, workers, progress, stride, half_maps, noise, ...)."""
    m = check_mode(mode)
    if not m.noise_weights and (kw.pop("half_maps", None) is not None or kw.pop("noise", None) is not None):
        raise LocScaleInputError(f"mode {mode!r} takes no noise weights (it scales the map's total shell power)",
                                 "leave out the half maps' noise weights, or use mode tapered")
    if device not in (None, "cpu"):
        if not m.gpu:
            raise LocScaleInputError(f"mode {mode!r} has no GPU implementation",
                                     "use mode tapered, exact, near-exact or fast with --device, or run this mode "
                                     "on the CPU")
        try:
            kw["backend"] = get_backend(device, kw.pop("batch_size", None))
        except ImportError as err:
            raise LocScaleInputError(f"device {device!r} needs the GPU backend, which is not available ({err})",
                                     "install the GPU extra (pip install 'locscale[gpu]') or use --device cpu"
                                     ) from err
        kw.pop("workers", None)  # torch manages its own threads
    if not m.strided and kw.pop("stride", None) is not None:
        raise LocScaleInputError(f"mode {mode!r} takes no stride (it scales every masked voxel's own window)",
                                 "leave out --stride, or use mode near-exact or fast")
    return m.function(emmap, modelmap, window, mask, **kw)


__all__ = ["MODES", "Mode", "check_inputs", "check_mode", "local_scale", "local_scale_compat",
           "local_scale_exact", "local_scale_fast", "local_scale_near_exact", "local_scale_tapered"]
