"""Import of EasyDistill 1.x JSON configs: every job type maps to a runnable studio config; problems are named."""

import json
import subprocess
import sys

import pytest
import yaml

from core.config import ConfigError, PipelineJob, dump_yaml, load_config_file
from core.config.easydistill_v1 import JOB_TYPES, SYNTH_OPERATORS
from tests.browser_support import ROOT

SECRET = "sk-THIS-IS-A-SECRET-KEY-12345"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "instructions.json").write_text(json.dumps([{"instruction": "What is 2+2?"}]))
    (tmp_path / "labeled.json").write_text(json.dumps([{"instruction": "What is 2+2?", "output": "4"}]))
    (tmp_path / "pairs.json").write_text(json.dumps([{"prompt": "q", "chosen": "a", "rejected": "b"}]))
    (tmp_path / "template.jinja").write_text("{{ messages }}")
    (tmp_path / "teacher").mkdir()
    (tmp_path / "student").mkdir()
    return tmp_path


def sample(job_type: str) -> dict:
    """A 1.x config as a user would have written it for this job type (schema of REFERENCE §1)."""
    api = job_type.endswith("_api")
    cfg: dict = {"job_type": job_type, "models": {"teacher": "teacher", "student": "student"}}
    if api:
        cfg["inference"] = {"base_url": "http://127.0.0.1:9/v1", "api_key": SECRET, "stream": True,
                            "system_prompt": "You are a helpful assistant.", "max_new_tokens": 256}
    else:
        cfg["inference"] = {"enable_chunked_prefill": True, "seed": 777, "gpu_memory_utilization": 0.9,
                            "temperature": 0.8, "trust_remote_code": True, "enforce_eager": False,
                            "max_model_len": 4096, "max_new_tokens": 512, "top_logits_num": 10}
    train = {"output_dir": "./result/", "num_train_epochs": 3, "per_device_train_batch_size": 1,
             "gradient_accumulation_steps": 8, "max_length": 512, "save_steps": 1000, "logging_steps": 1,
             "learning_rate": 2e-5, "weight_decay": 0.05, "warmup_ratio": 0.1, "lr_scheduler_type": "cosine"}
    if job_type.startswith("kd_"):
        cfg["dataset"] = {"instruction_path": "instructions.json", "labeled_path": "labeled.json",
                          "logits_path": "logits.json", "template": "template.jinja", "seed": 42}
        cfg["distillation"] = {"kd_ratio": 0.1, "max_seq_length": 512, "distillation_type": "forward_kld"}
        cfg["training"] = train
    elif job_type.startswith("rank_dpo"):
        cfg["dataset"] = {"instruction_path": "instructions.json", "labeled_path": "labeled.json",
                          "template": "template.jinja", "seed": 42}
        cfg["training"] = {**train, "beta": 0.1}
    elif job_type.startswith("rl_"):
        cfg["dataset"] = {"instruction_path": "instructions.json", "labeled_path": "pairs.json",
                          "template": "template.jinja"}
        cfg["models"]["reward"] = "teacher"
        cfg["training"] = train
    else:  # synthesis and evaluation: input_path -> output_path
        cfg["dataset"] = {"input_path": "instructions.json", "output_path": "out.json",
                          "num_in_context_samples": 3, "num_output_samples": 10}
        cfg["inference"]["prompt"] = "Rewrite the instruction."
    return cfg


def write(tmp, cfg, name="config.json"):
    p = tmp / name
    p.write_text(json.dumps(cfg))
    return p


@pytest.mark.parametrize("job_type", JOB_TYPES)
def test_every_job_type_imports(files, job_type):
    config, notes = load_config_file(write(files, sample(job_type)))
    kinds = [s.job.kind for s in config.steps] if isinstance(config, PipelineJob) else [config.kind]
    expected = {
        "kd_black_box_local": ["synth", "train_sft"], "kd_black_box_api": ["synth", "train_sft"],
        "kd_black_box_train_only": ["train_sft"], "kd_white_box": ["synth", "capture", "train_kd"],
        "kd_white_box_train_only": ["capture", "train_kd"], "rank_dpo_local": ["synth", "pairs", "train_dpo"],
        "rank_dpo_api": ["synth", "pairs", "train_dpo"], "rl_reward_local": ["train_reward"],
        "rl_reward_api": ["train_reward"], "rl_grpo": ["train_grpo"], "rl_ppo": ["train_grpo"],
        "cot_eval_api": ["judge"], "instruct_eval_api": ["judge"],
    }.get(job_type, ["synth"])
    assert kinds == expected
    text = dump_yaml(config)
    assert SECRET not in text and SECRET not in "\n".join(notes)
    assert yaml.safe_load(text)["kind"] == config.kind


@pytest.mark.parametrize("op", sorted(SYNTH_OPERATORS))
def test_synthesis_types_keep_operator_and_prompt(files, op):
    config, _ = load_config_file(write(files, sample(f"{op}_api")))
    assert config.operator == SYNTH_OPERATORS[op]
    assert config.prompt == "Rewrite the instruction."
    assert config.teacher.type == "openai" and config.teacher.endpoint.base_url == "http://127.0.0.1:9/v1"
    assert config.input == str(files / "instructions.json")
    assert config.num_in_context_samples == 3 and config.num_output_samples == 10


def test_white_box_settings_carried(files):
    config, notes = load_config_file(write(files, sample("kd_white_box")))
    label, capture, train = (s.job for s in config.steps)
    assert label.sampling.temperature == 0.8 and label.sampling.seed == 777  # not forced greedy as 1.x did
    assert capture.top_k == 10 and capture.input == label.output == train.dataset
    assert train.logits == capture.output
    assert train.kd_ratio == 0.1 and train.divergence == "forward_kl" and train.max_length == 512
    assert train.template == str(files / "template.jinja")
    assert train.output == "result"


def test_white_box_temperature_reaches_capture(files):
    cfg = sample("kd_white_box")
    cfg["distillation"]["temperature"] = 2.0
    config, _ = load_config_file(write(files, cfg))
    _, capture, train = (s.job for s in config.steps)
    assert capture.temperature == train.temperature == 2.0


def test_unknown_keys_reported_by_name(files):
    cfg = sample("kd_black_box_train_only")
    cfg["training"]["save_total_limit"] = 3
    cfg["mystery_section"] = {"a": 1}
    _, notes = load_config_file(write(files, cfg))
    joined = " ".join(notes)
    assert "training.save_total_limit" in joined and "mystery_section.a" in joined


def test_wrong_types_name_the_key(files):
    cfg = sample("kd_black_box_train_only")
    cfg["training"]["num_train_epochs"] = "three"
    cfg["training"]["learning_rate"] = [1]
    with pytest.raises(ConfigError) as e:
        load_config_file(write(files, cfg))
    text = e.value.report()
    assert "training.num_train_epochs" in text and "'three'" in text and "training.learning_rate" in text


def test_missing_file_names_key_and_path(files):
    cfg = sample("kd_black_box_train_only")
    cfg["dataset"]["labeled_path"] = "nope.json"
    with pytest.raises(ConfigError, match=r"dataset\.labeled_path.*not found.*nope\.json"):
        load_config_file(write(files, cfg))


def test_unknown_job_type(files):
    with pytest.raises(ConfigError, match="not an EasyDistill job type"):
        load_config_file(write(files, {"job_type": "kd_magic"}))


def test_invalid_json_names_line(files):
    p = files / "bad.json"
    p.write_text('{\n "job_type": "kd_white_box",\n oops\n}')
    with pytest.raises(ConfigError, match="line 3"):
        load_config_file(p)


def test_missing_required_model(files):
    cfg = sample("kd_black_box_local")
    del cfg["models"]["teacher"]
    with pytest.raises(ConfigError, match="models.teacher"):
        load_config_file(write(files, cfg))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "core.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_cli_validate_prints_yaml_without_secret(files):
    r = _cli("validate", "--config", str(write(files, sample("kd_black_box_api"))))
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(r.stdout)
    assert data["kind"] == "pipeline" and data["steps"][1]["job"]["kind"] == "train_sft"
    assert SECRET not in r.stdout + r.stderr
    assert "api_key_env" in r.stderr  # the note suggests an env var


def test_cli_validate_reports_every_problem(files):
    cfg = sample("kd_black_box_train_only")
    cfg["training"]["num_train_epochs"] = "x"
    cfg["dataset"]["labeled_path"] = "missing.json"
    r = _cli("validate", "--config", str(write(files, cfg)))
    assert r.returncode == 2
    assert "num_train_epochs" in r.stderr and "missing.json" in r.stderr


def test_studio_yaml_roundtrip(files):
    p = files / "job.yaml"
    p.write_text("kind: train_kd\nstudent: student\ndataset: labeled.json\nteacher: teacher\nlogits: c\n"
                 "kd_ratio: 0.3\ndivergence: jsd\n")
    config, _ = load_config_file(p)
    assert config.dataset == str(files / "labeled.json")  # relative to the config's folder (CLI rule)
    again = files / "again.yaml"
    again.write_text(dump_yaml(config))
    assert load_config_file(again)[0] == config


def test_studio_yaml_bad_value_is_explained(files):
    p = files / "job.yaml"
    p.write_text("kind: train_kd\nstudent: s\ndataset: d\nteacher: t\nlogits: c\ndivergence: kl_magic\nlr: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config_file(p)
    text = e.value.report()
    assert "'divergence'" in text and "kl_magic" in text
    assert "'lr' is not a known setting" in text
