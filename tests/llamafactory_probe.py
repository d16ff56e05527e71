"""Run by the LLaMA-Factory virtualenv's Python (tests/test_llamafactory_roundtrip.py): loads datasets through
LLaMA-Factory's own data pipeline, the calls `run_sft` / `run_rm` make, and writes what it produced as JSON.

    python tests/llamafactory_probe.py SPEC.json OUT.json

SPEC: {"dataset_dir", "model" (a folder with a tokenizer), "template", "cases": [{"name", "stage": "sft" | "rm",
"dataset_dir"?}]} (a case's own dataset_dir, else the spec's).
OUT: {"versions": {...}, "cases": {name: {"aligned": [{"prompt", "response", "system"}], "encoded": [...]}
| {"error": "..."}}}, where encoded rows are token ids decoded back to text: sft {"text", "labels"}, rm {"chosen",
"chosen_labels", "rejected", "rejected_labels"} (labels: the tokens trained on, in order).
Not a test module (no test_ prefix): it imports only what LLaMA-Factory's environment has.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback

IGNORE = -100


def _labelled(tokenizer, ids: list[int], labels: list[int]) -> str:
    return tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE])


def _encoded(tokenizer, row: dict, stage: str) -> dict:
    dec = tokenizer.decode
    if stage == "sft":
        return {"text": dec(row["input_ids"]), "labels": _labelled(tokenizer, row["input_ids"], row["labels"])}
    return {side: dec(row[f"{side}_input_ids"]) for side in ("chosen", "rejected")} | {
        f"{side}_labels": _labelled(tokenizer, row[f"{side}_input_ids"], row[f"{side}_labels"])
        for side in ("chosen", "rejected")}


def main(spec_path: str, out_path: str) -> None:
    import datasets
    import llamafactory
    import torch
    import transformers
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    spec = json.loads(open(spec_path, encoding="utf-8").read())
    out: dict = {"versions": {"llamafactory": llamafactory.__version__, "transformers": transformers.__version__,
                              "datasets": datasets.__version__, "torch": torch.__version__}, "cases": {}}
    tokenizer_module = template = None
    with tempfile.TemporaryDirectory() as tmp:
        for case in spec["cases"]:
            name, stage = case["name"], case["stage"]
            try:
                model_args, data_args, training_args, _, _ = get_train_args({
                    "stage": stage, "do_train": True, "model_name_or_path": spec["model"], "dataset": name,
                    "dataset_dir": case.get("dataset_dir", spec["dataset_dir"]), "template": spec["template"],
                    "cutoff_len": 1024,
                    "output_dir": f"{tmp}/out", "overwrite_cache": True, "finetuning_type": "full",
                    "report_to": "none", "per_device_train_batch_size": 1})
                if tokenizer_module is None:
                    tokenizer_module = load_tokenizer(model_args)
                    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
                attr = get_dataset_list([name], data_args.dataset_dir)[0]
                aligned = _load_single_dataset(attr, model_args, data_args, training_args)
                module = get_dataset(template, model_args, data_args, training_args, stage, **tokenizer_module)
                tok = tokenizer_module["tokenizer"]
                out["cases"][name] = {
                    "aligned": [{"prompt": r["_prompt"], "response": r["_response"], "system": r["_system"]}
                                for r in aligned],
                    "encoded": [_encoded(tok, r, stage) for r in module["train_dataset"]],
                }
            except Exception as e:  # noqa: BLE001 - every failure is reported per case, the test reads it
                out["cases"][name] = {"error": f"{type(e).__name__}: {e}",
                                      "traceback": traceback.format_exc()[-3000:]}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
