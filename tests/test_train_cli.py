"""An EasyDistill 1.x `kd_white_box_train_only` JSON runs end to end through `easydistill --config`: capture the tiny
teacher's top-k by teacher forcing, then white-box KD of the tiny student, as a pipeline of real worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(600)


def test_v1_kd_white_box_config_runs_end_to_end(tiny_models, tmp_path):
    pytest.importorskip("trl")
    rows = [{"instruction": f"Add {a} and {a + 1}.", "output": f"Sure: {a} plus {a + 1} is {2 * a + 1}."}
            for a in range(1, 13)]
    labeled = tmp_path / "labeled.json"
    labeled.write_text(json.dumps(rows), encoding="utf-8")
    config = {
        "job_type": "kd_white_box_train_only",
        "dataset": {"labeled_path": str(labeled), "seed": 42},
        "inference": {"top_logits_num": 5},
        "distillation": {"kd_ratio": 0.5, "distillation_type": "forward_kld", "max_seq_length": 128},
        "models": {"teacher": str(tiny_models.teacher), "student": str(tiny_models.student)},
        "training": {"output_dir": "./result/kd-student", "max_steps": 3, "per_device_train_batch_size": 2,
                     "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "save_steps": 100,
                     "logging_steps": 1},
    }
    cfg = tmp_path / "kd_white_box.json"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    ws = tmp_path / "ws"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    proc = subprocess.run([sys.executable, "-m", "core.cli.main", "--workspace", str(ws), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=540, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cache = ws / "cache" / "labeled-logits-k5"
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["rows"] == 12 and meta["k"] == 5
    model = ws / "models" / "kd-student"
    assert (model / "model.safetensors").is_file() and (model / "eds_model.json").is_file()
    prov = json.loads((model / "eds_model.json").read_text())
    assert prov["method"] == "kd" and prov["divergence"] == "forward_kl"
    runs = list((ws / "runs").iterdir())
    assert len(runs) == 1
    lines = [json.loads(x) for x in (runs[0] / "metrics.jsonl").read_text().splitlines() if x.strip()]
    kd_lines = [r for r in lines if "kd" in r and r.get("stage") == "train"]
    assert kd_lines and all(r["kd"] > 0 and r["ce"] > 0 for r in kd_lines)
