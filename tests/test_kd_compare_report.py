"""bench/kd_compare.py --from-json: the comparison's report printed again from a saved run, without training; the
paired column (held-out rows where a method beats SFT) recomputed from the per-row metrics the JSON keeps."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("kd_compare", ROOT / "bench" / "kd_compare.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses resolve annotations through the module
    spec.loader.exec_module(mod)
    return mod


def _row(label, role, steps="–", method=None, **m):
    return {"label": label, "role": role, "steps": steps, "train_s": [50.0] if steps != "–" else None,
            "train_cpu_s": [20.0] if steps != "–" else None, "job": "55" if steps != "–" else "–", **m,
            **({"method": method} if method else {})}


def _doc(with_rows: bool, with_method: bool) -> dict:
    sft, kd = ("sft", "kd-forward_kl") if with_method else (None, None)
    table = [_row("student before training", "model", kl=3.5, perplexity=900.0, rouge_l=0.07),
             _row("SFT", "model_2", "14", sft, kl=2.56, perplexity=85.9, rouge_l=0.098),
             _row("KD forward_kl", "model_3", "17", kd, kl=2.39, perplexity=65.7, rouge_l=0.113),
             _row("teacher (its own greedy answers)", "model_4", kl=0.0, perplexity=2.5, rouge_l=0.30)]
    doc = {"head": "== KD comparison: made up ==", "args": {"budget": 90.0, "clock": "cpu"}, "table": table,
           "samples": [{"id": "a", "prompt": "Why is the sky blue?", "gold": "Because of scattering. " * 30,
                        "model_2_answer": "The The The", "model_3_answer": "The sky is blue."}]}
    if with_rows:
        def rows(kl, ppl, rl):
            return {i: {"kl": k, "perplexity": p, "rouge_l": r} for i, k, p, r in zip("abc", kl, ppl, rl, strict=True)}
        doc["rows"] = {"model": rows([3, 3, 3], [900] * 3, [0.1] * 3),
                       "model_2": rows([2.5, 2.6, 2.4], [80, 90, 70], [0.10, 0.10, None]),
                       "model_3": rows([2.4, 2.5, 2.6], [60, 95, 65], [0.20, 0.05, 0.30]),
                       "model_4": rows([0, 0, 0], [2, 2, 2], [0.3] * 3)}
    return doc


def test_from_json_prints_the_markdown_table_with_the_paired_column(tmp_path, capsys):
    kd_compare = _load()
    path = tmp_path / "kd-compare.json"
    path.write_text(json.dumps(_doc(with_rows=True, with_method=True)), encoding="utf-8")
    kd_compare.main(["--from-json", str(path), "--chars", "40"])
    out = capsys.readouterr().out
    assert out.startswith("== KD comparison: made up ==")
    header = next(x for x in out.splitlines() if x.startswith("| method"))
    assert "optimizer steps in 90 s (cpu)" in header and "better than SFT" in header
    kd_line = next(x for x in out.splitlines() if x.startswith("| KD forward_kl"))
    # KL lower on 2 of 3 rows, perplexity lower on 2 of 3, ROUGE-L higher on 1 of the 2 rows where SFT has one
    assert kd_line == "| KD forward_kl | 17 | 50 / 20 | 55 | 2.390 | 65.70 | 0.113 | 2/3 / 2/3 / 1/2 |"
    assert next(x for x in out.splitlines() if x.startswith("| SFT |")).endswith("| – |")  # the baseline itself
    assert next(x for x in out.splitlines() if x.startswith("| teacher")).endswith("| – |")  # not trained
    assert "**Sample 1.** Why is the sky blue?" in out and "- SFT: 'The The The'" in out
    assert "- teacher (held-out answer): 'Because of scattering. Because of scatt…'" in out


def test_a_json_without_per_row_metrics_says_the_paired_column_is_missing(tmp_path, capsys):
    """A JSON written before the per-row metrics were kept (and before the table named its methods)."""
    kd_compare = _load()
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_doc(with_rows=False, with_method=False)), encoding="utf-8")
    kd_compare.main(["--from-json", str(path)])
    out = capsys.readouterr().out
    table = [x for x in out.splitlines() if x.startswith("|")]
    assert all(x.count("|") == 8 for x in table), table  # 7 columns: no paired one
    assert "No paired column" in out
    # the same old table with per-row metrics: the SFT row is found by its label
    doc = _doc(with_rows=True, with_method=False)
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert "| 2/3 / 2/3 / 1/2 |" in kd_compare.from_json(path, chars=40)
