"""A trained reward model (a `train_reward` output: one-output sequence-classification head) as a scorer of answers.

One place for both users: the evaluate job's `reward_model` metric and GRPO's `reward_model` reward
(core.train.rewards wraps it in TRL's reward signature). It scores prompt + answer as the model was trained: the
conversation through the tokenizer's chat template, cut to `max_length` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from core.errors import UserError


class RewardModelError(UserError, ValueError):
    """A model that cannot score answers (not a one-output reward head)."""


class RewardScorer:
    """Scores (prompt, answer) pairs with a reward model; `cpu` keeps it off the GPU."""

    error: ClassVar[type[UserError]] = RewardModelError  # what a caller's users see when the model is no reward model

    def __init__(self, path: Path, max_length: int, cpu: bool):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
        if self.model.config.num_labels != 1:
            raise self.error(f"reward_model: {Path(path).name} has {self.model.config.num_labels} outputs; a reward "
                             "model (from a train_reward job) has one")
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval().requires_grad_(False)
        self.max_length, self.cpu = max_length, cpu

    def _device(self):
        import torch

        if self.cpu or not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device())  # this rank's GPU (set by accelerate)

    def score(self, prompts: Sequence[Any], answers: Sequence[str]) -> list[float]:
        """One score per answer; a prompt is a chat (list of messages) or plain text."""
        import torch

        texts = []
        for p, a in zip(prompts, answers, strict=True):
            if isinstance(p, list):
                conv = [*p, {"role": "assistant", "content": a}]
                texts.append(self.tokenizer.apply_chat_template(conv, tokenize=False))
            else:
                texts.append(str(p) + a)
        device = self._device()
        self.model.to(device)
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length,
                               add_special_tokens=False).to(device)
        with torch.inference_mode():
            return self.model(**batch).logits[:, 0].float().tolist()
