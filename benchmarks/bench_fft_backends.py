#!/usr/bin/env python
"""Which FFT library to use for exact mode's window transforms.

    nice python benchmarks/bench_fft_backends.py                  # ~1 min
    nice python benchmarks/bench_fft_backends.py --windows 21,24,40 --batch 16

Times the batched real 3-D transform that exact mode runs per batch ((B, w, w, w) float32 → complex64 half
spectrum) with scipy's pocketfft (`workers`), ducc0 (`nthreads`, writing into a reused buffer, as the engine
does) and, when it is importable, pyFFTW (a plan made once with FFTW_MEASURE on aligned buffers; the time
includes copying the gathered windows into the plan's input, which the engine would have to do). pyFFTW is not
a dependency of the project: to include it, `pip install pyfftw` into a throwaway environment or put its wheel
on PYTHONPATH. Prints µs per window transform for 1 and 2 threads and the best library per row; writes
benchmarks/out/fft_backends.tsv.

Exact mode runs one single-threaded transform per worker thread, so the `threads = 1` rows are the ones that
decide the default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

COLUMNS = ["window", "threads", "batch", "scipy_us", "ducc0_us", "pyfftw_us", "best", "best_over_scipy"]


def _time(fn, seconds: float) -> float:
    """Seconds per call, after one warm-up call, over at least `seconds`."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def transforms(x: np.ndarray, threads: int) -> dict:
    """The callables to time for batch `x`, by library name."""
    import scipy.fft

    w = x.shape[1]
    out = np.empty(x.shape[:3] + (w // 2 + 1,), dtype=np.complex64)
    fns = {"scipy": lambda: scipy.fft.rfftn(x, axes=(1, 2, 3), workers=threads)}
    try:
        import ducc0.fft

        fns["ducc0"] = lambda: ducc0.fft.r2c(x, axes=(1, 2, 3), nthreads=threads, out=out)
    except ImportError:
        pass
    try:
        import pyfftw

        a = pyfftw.empty_aligned(x.shape, dtype="float32")
        b = pyfftw.empty_aligned(out.shape, dtype="complex64")
        plan = pyfftw.FFTW(a, b, axes=(1, 2, 3), threads=threads, flags=("FFTW_MEASURE",))

        def run_pyfftw():
            a[...] = x
            plan()

        fns["pyfftw"] = run_pyfftw
    except ImportError:
        pass
    return fns


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", default="16,21,24,28,32,40,48")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per library and row")
    args = ap.parse_args(argv)
    print(f"# {C.machine_note()}")
    rng = np.random.default_rng(0)
    rows = []
    for w in [int(v) for v in args.windows.split(",") if v]:
        x = rng.standard_normal((args.batch, w, w, w)).astype(np.float32)
        for threads in [int(v) for v in args.threads.split(",") if v]:
            us = {name: 1e6 * _time(fn, args.seconds) / args.batch for name, fn in transforms(x, threads).items()}
            best = min(us, key=us.get)
            rows.append({"window": w, "threads": threads, "batch": args.batch,
                         "scipy_us": round(us["scipy"], 1),
                         "ducc0_us": round(us["ducc0"], 1) if "ducc0" in us else None,
                         "pyfftw_us": round(us["pyfftw"], 1) if "pyfftw" in us else None,
                         "best": best, "best_over_scipy": round(us["scipy"] / us[best], 2)})
            print(C.table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    print()
    print(C.table(rows, COLUMNS))
    print(f"# wrote {C.write_tsv('fft_backends.tsv', rows, COLUMNS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
