"""Worker: run one LocScale mode on a saved case and print {"seconds": ...} (the scaling call alone).

usage: python benchmarks/_run_mode.py INPUTS.npz MODE WINDOW OUT.npy [OPTIONS_JSON]

MODE: exact | compat | near-exact | fast | gpu-exact | gpu-near-exact (the gpu modes take "device") |
fft-floor (only the two window transforms per masked voxel that exact mode needs: batches of windows
transformed with exact mode's FFT call, no gather, no reductions -- the arithmetic floor of exact mode).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def fft_floor(emap, model, window, mask=None, progress=False, batch_size=None, workers=None):
    from locscale.scaling.engine import default_batch_size, default_workers, rfft_windows

    n = int(mask.sum())
    bs = min(default_batch_size(window, batch_size), n)
    workers = default_workers(workers)
    rng = np.random.default_rng(0)
    batch = [rng.standard_normal((bs, window, window, window)).astype(np.float32) for _ in range(2)]
    done = 0
    while done < n:
        b = min(bs, n - done)
        for x in batch:
            rfft_windows(x[:b], workers)
        done += b
    return np.zeros(1, dtype=np.float32)


def main() -> int:
    npz, mode, window, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    options = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    d = np.load(npz)
    emap, model, mask = d["map"], d["model"], d["mask"]
    from locscale.scaling import MODES, local_scale

    if mode == "fft-floor":
        fn = fft_floor
    elif mode in MODES or (mode.startswith("gpu-") and mode[4:] in MODES):
        name = mode[4:] if mode.startswith("gpu-") else mode
        if mode.startswith("gpu-"):
            options.setdefault("device", "cuda")

        def fn(*args, **kw):
            return local_scale(*args, mode=name, **kw)
    else:
        raise SystemExit(f"unknown mode {mode}")
    if mode.startswith("gpu") and options.get("device", "cuda").startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = fn(emap, model, window, mask=mask, progress=False, **options)
    seconds = time.perf_counter() - t0
    np.save(out, np.asarray(result, dtype=np.float32))
    print(json.dumps({"seconds": seconds, "voxels": int(mask.sum())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
