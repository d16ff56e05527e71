"""The tiny test models load like any checkpoint, render ChatML with generation markers and generate."""

from __future__ import annotations

import json

MSGS = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "It is 4."},
]


def test_tiny_pair_loads_renders_and_generates(tiny_models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models.teacher)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = tok.apply_chat_template(MSGS, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\nIt is 4.<|im_end|>\n")
    prompt = tok.apply_chat_template(MSGS[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")

    # TRL's assistant_only_loss relies on the {% generation %} markers: the mask covers exactly the answer + eos.
    enc = tok.apply_chat_template(MSGS, return_assistant_tokens_mask=True, return_dict=True)
    masked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == "It is 4.<|im_end|>"

    # byte-level BPE round-trips any text (no unknown tokens)
    for s in ["Hello, world!", "知识蒸馏 😀", "  def f(x):\n\treturn x"]:
        assert tok.decode(tok(s)["input_ids"]) == s

    teacher = AutoModelForCausalLM.from_pretrained(tiny_models.teacher)
    student = AutoModelForCausalLM.from_pretrained(tiny_models.student)
    assert teacher.config.num_hidden_layers > student.config.num_hidden_layers
    assert teacher.config.vocab_size == student.config.vocab_size >= len(tok)
    assert teacher.config.hidden_size // teacher.config.num_attention_heads >= 32  # vLLM CPU attention needs it
    assert AutoTokenizer.from_pretrained(tiny_models.student).get_vocab() == tok.get_vocab()

    inputs = tok.apply_chat_template(MSGS[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = teacher.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_tiny_pair_is_deterministic_and_cached(tiny_models, tmp_path):
    from core.models.tiny import build_tiny_pair

    again = build_tiny_pair(tiny_models.teacher.parent)  # cached: same folders, untouched
    assert again.teacher == tiny_models.teacher
    fresh = build_tiny_pair(tmp_path)  # rebuilt from scratch: identical bytes
    for a, b in [(fresh.teacher, tiny_models.teacher), (fresh.student, tiny_models.student)]:
        assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
        assert json.loads((a / "tokenizer.json").read_text()) == json.loads((b / "tokenizer.json").read_text())
