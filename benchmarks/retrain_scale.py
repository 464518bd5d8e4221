"""Bounded retraining as the store grows: `synthwatch retrain --max-train N` on stores of 1 M and
10 M synthetic images (plus a quarter as many real ones), each run its own process, timed and
its peak memory taken from the kernel.

Usage: python benchmarks/retrain_scale.py [--sizes 1000000,10000000] [--max-train 200000]
           [--max-eval 200000] [--dim 64] [--work DIR] [--unbounded-below 2000000] [--json]

Each size gets a simulated store (``synthwatch.store.simulated``: a real DuckDB catalog, real
Parquet shards, the store's split rule; unit vectors where each of 10 generators shifts its images
along a shared direction and one of its own), written before the clock starts and reused when it
is already in ``--work``. The measured command is the one a user runs: `python -m synthwatch
--store S retrain --max-train N --max-eval M --no-robustness --json` (robustness views need image
bytes, which simulated images do not have). Sizes below ``--unbounded-below`` are also retrained
with both bounds lifted, the way every retrain read before (every vector, every pair).

``--json`` prints one object: ``rows``, each with ``vectors``, ``seconds``, ``peak_rss_mb``,
``max_train`` (and ``max_eval``, ``bounded``, what was read and the decision), ``machine`` and the
ratios of the largest size to the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Keep this folder off the path so `heads`-like names resolve to the packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from synthwatch.store.simulated import SimulatedSize, write_simulated_store  # noqa: E402

UNBOUNDED = 10**12


def store_for(work: Path, synthetic: int, dim: int) -> tuple[Path, float | None]:
    """The simulated store of ``synthetic`` fakes in ``work`` (written unless complete), and the
    seconds writing it took (None: reused)."""
    root = work / f"simulated-{synthetic}-d{dim}"
    done = root / ".complete"
    if done.exists():
        return root, None
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    write_simulated_store(root, SimulatedSize(synthetic=synthetic, real=synthetic // 4, dim=dim))
    done.write_text("")
    return root, round(time.perf_counter() - started, 1)


def retrain(store: Path, max_train: int, max_eval: int) -> dict:
    """One retrain in its own process: wall seconds, peak RSS (the kernel's, of that process) and
    its --json output."""
    command = [sys.executable, "-m", "synthwatch", "--store", str(store), "retrain", "--max-train", str(max_train),
               "--max-eval", str(max_eval), "--no-robustness", "--n-boot", "200", "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):  # 3: the gate rejected the candidate, which is still a finished retrain
        raise SystemExit(f"retrain on {store} failed ({code}): {err[-2000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024), "result": json.loads(out)}


def row(synthetic: int, store: Path, written_s: float | None, max_train: int, max_eval: int) -> dict:
    run = retrain(store, max_train, max_eval)
    result = run["result"]
    training, evaluation = result.get("training_sample"), result.get("evaluation_sample")
    vectors = synthetic + synthetic // 4
    read = vectors  # every vector, unless a sample says otherwise
    if training or evaluation:
        read = ((training or {}).get("rows") or 0) + sum(evaluation[s]["rows"] for s in ("val", "test")) \
            if evaluation and training else None
    return {"synthetic": synthetic, "vectors": vectors, "bounded": max_train < UNBOUNDED,
            "max_train": max_train, "max_eval": max_eval, "seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"],
            "rows_read": read,
            "decision": result["decision"], "mean_auroc": round(result["metrics"]["summary"]["mean_auroc"], 4),
            "store_written_s": written_s, "store_mb": round(_size(store) / 2**20)}


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="synthetic images per store, comma-separated")
    parser.add_argument("--max-train", type=int, default=200_000)
    parser.add_argument("--max-eval", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path("/tmp/synthwatch-retrain-scale"))
    parser.add_argument("--unbounded-below", type=int, default=2_000_000,
                        help="also retrain sizes below this with both bounds lifted")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    machine = f"{os.cpu_count()} cores, {platform.machine()}, {platform.python_version()}"
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    say(f"bounded retraining: --max-train {args.max_train:,} --max-eval {args.max_eval:,}, width {args.dim}; {machine}")
    rows = []
    for synthetic in [int(s) for s in args.sizes.split(",")]:
        store, written = store_for(args.work, synthetic, args.dim)
        rows.append(row(synthetic, store, written, args.max_train, args.max_eval))
        say(json.dumps(rows[-1]))
        if synthetic < args.unbounded_below:
            rows.append(row(synthetic, store, None, UNBOUNDED, UNBOUNDED))
            say(json.dumps(rows[-1]))
    bounded = [r for r in rows if r["bounded"]]
    ratios = {}
    if len(bounded) > 1:
        small, large = bounded[0], bounded[-1]
        ratios = {"vectors": round(large["vectors"] / small["vectors"], 1),
                  "seconds": round(large["seconds"] / small["seconds"], 2),
                  "peak_rss": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)}
        say(f"{large['vectors']:,} against {small['vectors']:,} vectors: {ratios['seconds']}x the time, "
            f"{ratios['peak_rss']}x the peak memory (goal: within 1.5x)")
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows, "ratios": ratios}))


if __name__ == "__main__":
    main()
