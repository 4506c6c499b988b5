"""The torch backend (locscale.scaling.backends.TorchBackend) against the naive exact reference and the numpy
backend, through the same mode skeletons.

Runs on CPU torch when torch is installed (any machine), on CUDA when a GPU is present; skips cleanly when
torch or CUDA is absent. Without torch, checks that the backend module still imports and that the error tells
the user how to install it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from naive_reference import naive_exact
from test_near_exact import crop_of

from locscale.errors import LocScaleInputError
from locscale.scaling import (
    backends,
    local_scale,
    local_scale_exact,
    local_scale_fast,
    local_scale_near_exact,
    local_scale_tapered,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _devices():
    devs = [pytest.param("cpu", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch not installed"))]
    devs.append(pytest.param("cuda", marks=[pytest.mark.gpu,
                                            pytest.mark.skipif(not backends.cuda_available(),
                                                               reason="no CUDA GPU visible to torch")]))
    return devs


@pytest.fixture(scope="module")
def crop(emd3488_scaling_inputs):
    return crop_of(emd3488_scaling_inputs)


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed")
def test_missing_torch_says_how_to_install(crop):
    emap, model, mask = crop
    assert not backends.torch_available() and not backends.cuda_available()
    with pytest.raises(ImportError, match=r"locscale\[gpu\]"):
        backends.TorchBackend("cpu")
    with pytest.raises(LocScaleInputError, match=r"locscale\[gpu\]"):
        local_scale(emap, model, 10, mask, mode="near-exact", device="cuda", progress=False)


def test_backends_share_one_interface():
    """The torch backend offers what the skeletons call on the numpy one (checked without torch)."""
    wanted = {"centre_values", "shell_powers", "box_means", "shell_convolver"}
    for cls in (backends.NumpyBackend, backends.TorchBackend):
        assert wanted <= {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize("device", _devices())
def test_exact_torch_equals_naive(crop, device):
    emap, model, mask = crop
    sub = np.zeros_like(mask)
    sub[6:20, 6:20, 6:20] = mask[6:20, 6:20, 6:20]
    ref = naive_exact(emap, model, 11, sub)
    got = local_scale_exact(emap, model, 11, sub, progress=False,
                            backend=backends.TorchBackend(device, batch_size=97))
    # float32 transforms, float64 shell sums: rounding ~1e-7 of the largest value; 1e-5 leaves a wide margin
    np.testing.assert_allclose(got[sub], ref[sub], rtol=0, atol=1e-5 * np.abs(ref[sub]).max())
    assert np.all(got[~sub] == 0)


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("fn", [local_scale_near_exact, local_scale_fast, local_scale_tapered])
def test_near_exact_torch_equals_numpy(crop, device, stride, fn):
    emap, model, mask = crop
    ref = fn(emap, model, 12, mask, stride=stride, progress=False)
    got = fn(emap, model, 12, mask, stride=stride, progress=False, backend=backends.TorchBackend(device))
    # same skeleton, float32 transforms on both sides, different FFT libraries: rounding only
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_cuda_request_without_gpu_is_clear():
    if backends.cuda_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        backends.resolve_device("cuda")
