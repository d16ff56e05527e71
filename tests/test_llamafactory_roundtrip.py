"""Every export the studio offers, loaded by LLaMA-Factory itself, and LLaMA-Factory datasets imported (issue 19).

The kinds of data we hold (single-turn rows, with Alpaca `input` and a system prompt; chats, one multi-turn with
a system message; preference pairs, one multi-turn as the pairs job writes it) are exported in every format through
the Data tab's path (core.data.convert.export_dataset with the LLaMA-Factory entry), and LLaMA-Factory's own data
pipeline (`get_dataset_list` -> `_load_single_dataset` -> `get_dataset`, as `run_sft` / `run_rm` call it) loads each
in the LLaMA-Factory virtualenv (`make llamafactory-env`, scripts/setup_llamafactory.sh), one subprocess for the
whole matrix (tests/llamafactory_probe.py). Checked per export: the system, prompt turns and answer(s) it aligned,
and the ChatML text and trained-on labels the template encoded, with our tiny tokenizer.

The other direction: datasets in the shapes of LLaMA-Factory's data/README (alpaca with system / history / input
only, sharegpt with a system turn or column, OpenAI-style tags, both preference shapes) are loaded by LLaMA-Factory in
the same subprocess and imported by the studio (core.data.llamafactory_import): each row must hold the conversation
LLaMA-Factory reads. And every export's own dataset_info.json entry imports back to the rows it came from (no
LLaMA-Factory needed, so that one also runs in `make test-fast`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from core.data.convert import export_dataset
from core.data.errors import DataError
from core.data.io import write_records
from core.data.llamafactory_import import import_llamafactory
from core.data.rows import iter_jsonl_rows, to_messages
from core.data.store import save_rows

ROOT = Path(__file__).resolve().parent.parent
LF_PYTHON = Path(os.environ.get("EDS_LLAMAFACTORY_PYTHON") or ROOT / ".venv-llamafactory" / "bin" / "python")

SYS = "You are terse."
# canonical rows (core.data.rows) -> what LLaMA-Factory must see: (system, prompt turns, answers)
SINGLE = [
    ({"id": "s1", "instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
     ("", ["Translate to French.\nGood morning"], ["Bonjour"])),
    ({"id": "s2", "instruction": "Name a prime number.", "output": "7", "system": "Be brief."},
     ("Be brief.", ["Name a prime number."], ["7"])),
    ({"id": "s3", "instruction": "What is 2+2?", "output": "4"}, ("", ["What is 2+2?"], ["4"])),
]
CHAT = [
    ({"id": "c1", "instruction": "Say yes", "output": "yes"}, ("", ["Say yes"], ["yes"])),
    ({"id": "c2", "system": SYS, "instruction": "c", "output": "d", "category": "Others",
      "messages": [{"role": "system", "content": SYS}, {"role": "user", "content": "a"},
                   {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
                   {"role": "assistant", "content": "d"}]},
     (SYS, ["a", "b", "c"], ["d"])),
]
PAIRS = [  # as core.pairs.job writes them: instruction (+ system, + history of earlier turns), chosen, rejected
    ({"id": "p1", "instruction": "Best pet?", "chosen": "A cat, for independence.", "rejected": "idk",
      "chosen_by": "teacher", "rejected_by": "student", "margin": 0.5},
     ("", ["Best pet?"], ["A cat, for independence.", "idk"])),
    ({"id": "p2", "system": "Answer with a number.", "instruction": "Sum of 1 and 1?", "chosen": "2",
      "rejected": "3", "chosen_by": "teacher", "rejected_by": "student", "margin": 1.0},
     ("Answer with a number.", ["Sum of 1 and 1?"], ["2", "3"])),
    ({"id": "p3", "instruction": "times 3?", "chosen": "12", "rejected": "7",
      "history": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
      "chosen_by": "teacher", "rejected_by": "student", "margin": 2.0},
     ("", ["2+2?", "4", "times 3?"], ["12", "7"])),
]
BARE = [  # no optional column at all (the files LLaMA-Factory failed on: entries named system / history anyway)
    ({"id": "b1", "instruction": "Capital of Italy?", "output": "Rome"}, ("", ["Capital of Italy?"], ["Rome"])),
]
KINDS = {"bare": BARE, "single": SINGLE, "chat": CHAT, "pairs": PAIRS}
FORMATS = ["messages", "alpaca", "sharegpt", "easydistill", "dpo"]

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "system_tag": "system"}
NATIVE = {  # entry name -> (dataset_info entry, records): LLaMA-Factory's data/README shapes, as people bring them
    "lf_alpaca": ({"columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                               "history": "history"}}, [
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour", "system": "Be brief."},
        {"instruction": "And now?", "input": "", "output": "Bonsoir", "history": [["Translate to French.", "Bonjour"]]},
        {"instruction": "", "input": "Only the input", "output": "ok"},
    ]),
    "lf_alpaca_default": ({}, [{"instruction": "Capital of Italy?", "input": "one word", "output": "Rome"}]),
    "lf_sharegpt": ({"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"}}, [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}], "system": "Kind."},
        {"conversations": [{"from": "system", "value": "Terse."}, {"from": "human", "value": "a"},
                           {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"},
                           {"from": "gpt", "value": "d"}]},
    ]),
    "lf_openai": ({"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": OPENAI_TAGS}, [
        {"messages": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}]},
    ]),
    "lf_alpaca_pairs": ({"ranking": True, "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                                      "rejected": "rejected", "system": "system"}}, [
        {"instruction": "Best pet?", "input": "one word", "chosen": "Cat", "rejected": "idk", "system": "Be kind."},
    ]),
    "lf_sharegpt_pairs": ({"formatting": "sharegpt", "ranking": True,
                           "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}, [
        {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"},
                           {"from": "human", "value": "times 3?"}],
         "chosen": {"from": "gpt", "value": "12"}, "rejected": {"from": "gpt", "value": "7"}},
    ]),
}


def expected(fmt: str, kind: str) -> tuple[str, list[tuple[str, list[str], list[str]]]] | None:
    """(stage, what each loaded row must be) for an export, or None when the export must be refused."""
    cases = [want for _, want in KINDS[kind]]
    if fmt == "dpo" and kind != "pairs":
        return None  # no pair to write: refused, no file, no entry
    if kind == "pairs" and fmt in ("alpaca", "sharegpt", "dpo"):
        return "rm", cases
    if kind == "pairs":  # one-answer formats: the chosen answer
        cases = [(s, turns, answers[:1]) for s, turns, answers in cases]
    if fmt == "easydistill":  # instruction + output only: no system, no multi-turn rows
        cases = [("", turns, answers) for _, turns, answers in cases if len(turns) == 1]
    return "sft", cases


def conversation(row: dict) -> tuple[str, list[str], list[str]]:
    """(system, prompt turns, answers) of a canonical row: [chosen, rejected] for a pair, else [output]."""
    msgs = to_messages(row, include_output=False)
    system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else ""
    turns = [m["content"] for m in msgs if m["role"] != "system"]
    answers = [row["chosen"], row["rejected"]] if row.get("rejected") is not None else [row.get("output")]
    if row.get("messages") and row["messages"][-1]["role"] == "assistant":
        answers = [row["messages"][-1]["content"]]
    return system, turns, answers


def export_all(ws) -> tuple[dict, dict]:
    """Every kind saved as a dataset and exported in every format with its entry: (exports, refusals)."""
    exports, refused = {}, {}
    for kind, rows in KINDS.items():
        save_rows(ws, kind, [dict(r) for r, _ in rows], created_by="test")
        for fmt in FORMATS:
            try:
                exports[(fmt, kind)] = export_dataset(ws, kind, fmt, llamafactory=True)
            except DataError as e:
                refused[(fmt, kind)] = str(e)
    return exports, refused


def write_native(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, (entry, records) in NATIVE.items():
        write_records(folder / f"{name}.json", records)
        info[name] = {"file_name": f"{name}.json", **entry}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return folder


def chatml(system: str, turns: list[str]) -> str:
    text = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    for i, t in enumerate(turns):
        text += f"<|im_start|>user\n{t}<|im_end|>\n<|im_start|>assistant\n" if i % 2 == 0 else f"{t}<|im_end|>\n"
    return text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, tiny_models):
    """Export every format x kind with its LLaMA-Factory entry, then load them all, and the LLaMA-Factory-shaped
    datasets, in one LLaMA-Factory process."""
    if not LF_PYTHON.exists():
        pytest.skip(f"no LLaMA-Factory environment at {LF_PYTHON}: run `make llamafactory-env` "
                    "(scripts/setup_llamafactory.sh) or set EDS_LLAMAFACTORY_PYTHON")
    from core.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("lf") / "ws")
    exports, refused = export_all(ws)
    cases = [{"name": done.info_name, "stage": expected(fmt, kind)[0]} for (fmt, kind), done in exports.items()]
    native = write_native(ws.root / "lf-native")
    cases += [{"name": name, "stage": "rm" if entry.get("ranking") else "sft", "dataset_dir": str(native)}
              for name, (entry, _) in NATIVE.items()]
    folder = ws.datasets / "exports"
    spec = ws.root / "probe.json"
    spec.write_text(json.dumps({"dataset_dir": str(folder), "model": str(tiny_models.tokenizer),
                                "template": "chatml", "cases": cases}))
    out = ws.root / "probe-out.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_CACHE": str(ws.root / "hf-datasets")}
    proc = subprocess.run([str(LF_PYTHON), str(ROOT / "tests" / "llamafactory_probe.py"), str(spec), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and out.exists(), f"the LLaMA-Factory probe failed:\n{proc.stderr[-4000:]}"
    probe = json.loads(out.read_text())
    return {"ws": ws, "exports": exports, "refused": refused, "cases": probe["cases"], "versions": probe["versions"],
            "info": json.loads((folder / "dataset_info.json").read_text()), "native": native}


@pytest.mark.llamafactory
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_loads_in_llamafactory_with_the_right_text(loaded, fmt, kind):
    want = expected(fmt, kind)
    name = f"{kind}-{fmt}"
    if want is None:
        assert "nothing to export as dpo" in loaded["refused"][(fmt, kind)]
        assert name not in loaded["info"] and not (loaded["ws"].datasets / "exports" / f"{name}.jsonl").exists()
        return
    stage, rows = want
    assert (fmt, kind) not in loaded["refused"], loaded["refused"].get((fmt, kind))
    entry = loaded["info"][name]
    assert entry.get("ranking", False) == (stage == "rm")
    got = loaded["cases"][name]
    assert "error" not in got, f"LLaMA-Factory {loaded['versions']} could not load {name}:\n{got.get('traceback')}"

    aligned = [(r["system"] or "", [m["content"] for m in r["prompt"]], [m["content"] for m in r["response"]])
               for r in got["aligned"]]
    assert aligned == rows
    assert len(got["encoded"]) == len(rows)  # none dropped by its preprocessing
    for enc, (system, turns, answers) in zip(got["encoded"], rows, strict=True):
        prompt = chatml(system, turns)
        if stage == "sft":
            assert enc["text"] == prompt + f"{answers[0]}<|im_end|>\n"
            trained = [t for i, t in enumerate(turns) if i % 2] + answers  # every answer of the chat is trained on
            assert enc["labels"] == "".join(f"{t}<|im_end|>\n" for t in trained)
        else:
            for side, answer in zip(("chosen", "rejected"), answers, strict=True):
                assert enc[side] == prompt + f"{answer}<|im_end|>\n"
                assert enc[f"{side}_labels"] == f"{answer}<|im_end|>\n"


@pytest.mark.llamafactory
def test_entries_name_only_columns_the_files_have(loaded):
    """The cause of issue 19: an entry naming an optional column (system, history) no written row has."""
    for (fmt, kind), done in loaded["exports"].items():
        cols = set(loaded["info"][done.info_name]["columns"].values())
        assert cols <= set(done.result.columns), (fmt, kind, cols, done.result.columns)
    assert "system" not in loaded["info"]["chat-messages"]["columns"]
    assert set(loaded["info"]["single-alpaca"]["columns"]) == {"prompt", "query", "response", "system"}
    assert loaded["info"]["pairs-dpo"]["columns"] == {"prompt": "prompt", "system": "system", "history": "history",
                                                      "chosen": "chosen", "rejected": "rejected"}


@pytest.mark.llamafactory
@pytest.mark.parametrize("name", list(NATIVE))
def test_llamafactory_datasets_import_as_llamafactory_reads_them(loaded, name):
    got = loaded["cases"][name]
    assert "error" not in got, f"LLaMA-Factory {loaded['versions']} could not load {name}:\n{got.get('traceback')}"
    lf = [(r["system"] or "", [m["content"] for m in r["prompt"]], [m["content"] for m in r["response"]])
          for r in got["aligned"]]
    res = import_llamafactory(loaded["ws"], loaded["native"] / "dataset_info.json", name)
    assert not res.errors
    assert [conversation(r) for r in iter_jsonl_rows(res.path)] == lf


def test_every_export_entry_imports_back_to_its_rows(workspace):
    """Our dataset_info.json entries read by the studio's LLaMA-Factory importer: the same conversations (what the
    format holds of them), and the same pairs."""
    exports, _ = export_all(workspace)
    assert len(exports) == len(FORMATS) * len(KINDS) - 3  # dpo of the kinds without pairs: refused
    for (fmt, kind), done in exports.items():
        res = import_llamafactory(workspace, done.info_path, done.info_name, name=f"back-{kind}-{fmt}")
        assert not res.errors, (fmt, kind, res.errors)
        assert [conversation(r) for r in iter_jsonl_rows(res.path)] == expected(fmt, kind)[1], (fmt, kind)
