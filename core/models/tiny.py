"""Tiny Qwen2-architecture teacher/student pairs for tests and benchmarks.

Every trainer and backend must run on a machine with no GPU and no hub access, in seconds. These models are random
(seeded) but real: a byte-level BPE tokenizer trained here with Qwen2's pre-tokenizer, a ChatML chat template with
`{% generation %}` markers (TRL's assistant-only loss needs them), head_dim 32 (vLLM's CPU attention needs >= 32),
saved with `save_pretrained` so `AutoModelForCausalLM` / `AutoTokenizer` / vLLM load them like any checkpoint.
The teacher has more layers than the student; both share one tokenizer. Builds are deterministic and cached: a folder
whose stamp matches the build recipe is reused.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

# ChatML, as Qwen2 uses it, with the assistant content wrapped in generation markers.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PAD_TOKEN, EOS_TOKEN = "<|endoftext|>", "<|im_end|>"

# Model shapes: head_dim = hidden_size / num_attention_heads = 32.
TEACHER_SHAPE = {"num_hidden_layers": 4, "hidden_size": 128, "intermediate_size": 256}
STUDENT_SHAPE = {"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256}
COMMON_SHAPE = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024}
# Weight init std: 0.02 (the usual) gives near-uniform next-token distributions and "\n\n\n..." answers; 0.1 gives
# varied text and distinct top-k log-probs, so tests comparing generations or logits actually compare something.
INIT_STD = 0.1
VOCAB_TARGET = 1024  # tokenizer size the BPE trainer aims for; the model's vocab is padded to a multiple of 64
SEED = 1234
RECIPE_VERSION = 2

_WORDS = (
    "the a an of to and in is it that for on with as was by at be this are from or have not but what all were when "
    "we there can your which their said if will each about how up out them then she many some so these would other "
    "into has more her two like him see time could no make than first been its who now people my made over did down "
    "only way find use may water long little very after words called just where most know get through back much go "
    "good new write our me man too any day same right look think also around another came come work three must "
    "because does part even place well such here take why help put different away again off went old number great "
    "tell men say small every found still between name should home big give air line set own under read last never "
    "us left end along while might next sound below saw something thought both few those always show large often "
    "together asked house don't world going want school important until form food keep children feet land side "
    "without boy once animal life enough took four head above kind began almost live page got earth need far hand "
    "high year mother light country father let night picture being study second soon story since white ever paper "
    "hard near sentence better best across during today however sure knew it's try told young sun thing whole hear "
    "example heard several change answer room sea against top turned learn point city play toward five himself "
    "usually money seen didn't car morning i'm body upon family later turn move face door cut done group true leave "
    "question answer reason step solve math number add plus minus equals total student teacher model train data "
    "distill knowledge language learn token output input reply assistant user system helpful please thanks"
).split()
_PUNCT = [".", ".", ".", "?", "!", ",", ";", ":"]


@dataclass
class TinyPair:
    teacher: Path
    student: Path
    tokenizer: Path  # the shared tokenizer folder (also saved inside each model folder)


def _corpus(n_lines: int = 3000, seed: int = SEED) -> list[str]:
    """Deterministic English-like text plus numbers, code-ish symbols and some CJK, so every byte class is seen."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 9999)))
        s = " ".join(words)
        s = s[0].upper() + s[1:] + rng.choice(_PUNCT)
        if i % 7 == 0:
            s = f"{rng.randint(1, 99)} + {rng.randint(1, 99)} = {rng.randint(2, 198)}. {s}"
        if i % 13 == 0:
            s += " 你好，世界。知识蒸馏。"
        if i % 11 == 0:
            s += f"\n  def f(x):\n    return x * {rng.randint(2, 9)}\n"
        lines.append(s)
    return lines


def _recipe_hash() -> str:
    recipe = {
        "v": RECIPE_VERSION, "template": CHAT_TEMPLATE, "specials": SPECIAL_TOKENS, "teacher": TEACHER_SHAPE,
        "student": STUDENT_SHAPE, "common": COMMON_SHAPE, "init": INIT_STD, "vocab": VOCAB_TARGET, "seed": SEED,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def build_tokenizer(out_dir: Path, vocab_target: int = VOCAB_TARGET, corpus_seed: int = SEED):
    """Train a byte-level BPE tokenizer with Qwen2's pre-tokenizer and save it (with the chat template) to out_dir."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_target, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed=corpus_seed), trainer=trainer)
    model_state = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_state["merges"]]
    hf_tok = Qwen2Tokenizer(
        vocab=model_state["vocab"], merges=merges, unk_token=None, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN)],
        model_max_length=COMMON_SHAPE["max_position_embeddings"], clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(out_dir)
    return hf_tok


def _build_model(out_dir: Path, tokenizer, shape: dict, seed: int) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    vocab = -(-len(tokenizer) // 64) * 64
    cfg = Qwen2Config(
        vocab_size=vocab, **COMMON_SHAPE, **shape, tie_word_embeddings=True, initializer_range=INIT_STD,
        rms_norm_eps=1e-6, rope_theta=10000.0,
        bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN), torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=[cfg.eos_token_id, cfg.pad_token_id], pad_token_id=cfg.pad_token_id, bos_token_id=None,
        do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def build_tiny_pair(directory: Path) -> TinyPair:
    """Build (or reuse) the tiny teacher/student pair under `directory`; returns their folders."""
    directory = Path(directory)
    pair = TinyPair(directory / "tiny-teacher", directory / "tiny-student", directory / "tiny-tokenizer")
    stamp = directory / ".tiny-recipe"
    want = _recipe_hash()
    complete = all((p / "model.safetensors").exists() for p in (pair.teacher, pair.student))
    if complete and stamp.exists() and stamp.read_text().strip() == want:
        return pair
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(pair.tokenizer)
    _build_model(pair.teacher, tokenizer, TEACHER_SHAPE, SEED)
    _build_model(pair.student, tokenizer, STUDENT_SHAPE, SEED + 1)
    stamp.write_text(want)
    return pair


# A teacher with its own vocabulary (cross-tokenizer KD): BPE trained on other text to another size, so ids, merges and
# most token boundaries differ from the pair's tokenizer; same special tokens and chat template.
OTHER_VOCAB_TARGET, OTHER_SEED = 700, 4321


def build_other_vocab_teacher(directory: Path) -> Path:
    """Build (or reuse) `directory/tiny-teacher-othervocab`: the pair's teacher shape on a different tokenizer."""
    directory = Path(directory)
    folder = directory / "tiny-teacher-othervocab"
    stamp = directory / ".tiny-othervocab-recipe"
    want = hashlib.sha256(f"{_recipe_hash()}/{OTHER_VOCAB_TARGET}/{OTHER_SEED}".encode()).hexdigest()[:16]
    if (folder / "model.safetensors").exists() and stamp.exists() and stamp.read_text().strip() == want:
        return folder
    tokenizer = build_tokenizer(directory / "tiny-tokenizer-othervocab", OTHER_VOCAB_TARGET, OTHER_SEED)
    _build_model(folder, tokenizer, TEACHER_SHAPE, OTHER_SEED)
    stamp.write_text(want)
    return folder
