"""The GPU check's CPU dry run: the script that is run when a GPU is lent must not rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_runs_every_section_and_its_checks_pass(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["failures"] == [] and figures["skipped"] == []
    sections = figures["sections"]
    assert set(sections) == {
        "machine", "cuda_tests.bf16_vs_fp32.test-tiny-dinov2", "cuda_tests.bf16_vs_fp32.test-tiny-convnext",
        "embed.test-tiny-dinov2", "embed.test-tiny-convnext", "workers_sweep", "cuda_tests.finetune_resume",
        "finetune", "decode_only", "gpu_jpeg",
    }
    resume = sections["cuda_tests.finetune_resume"]
    assert resume["child_exit"] == -9 and resume["resumed_from"] == resume["checkpoint_step"] == 2
    assert resume["relative_difference"] == 0.0  # CPU is deterministic: resuming changes nothing
    embed = sections["embed.test-tiny-dinov2"]
    assert embed["check"]["rows"] == embed["check"]["images"] == 24 and embed["check"]["min_cosine"] > 0.9999
    assert [row["batch"] for row in embed["forward"]] == [4, 8] and embed["end_to_end"]["images_per_s"] > 0
    assert sections["gpu_jpeg"]["max_abs_pixel_difference"] == 0  # torchvision's CPU decoder is libjpeg-turbo too
    assert set(figures["goals_met"]) == {"e2e_over_forward", "e2e_over_naive", "e2e_images_per_s_h100"}
    for line in ("bf16 vs fp32", "forward only, batch", "end to end JPEG -> Parquet", "naive one-image loop",
                 "fine-tuning killed", "training images/s", "device JPEG decode"):
        assert line in done.stdout  # each figure is printed as it is measured


def test_gpu_check_refuses_a_machine_without_a_gpu(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path / "x.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2 and "--dry-run" in done.stdout
    assert not (tmp_path / "x.json").exists()
