"""Property-based tests (hypothesis): whatever a person brings — any JSON value, any bytes under any extension, any
1.x / 2.0 config — the format detector, the import converters, the export converters and the config importers give
a result or a UserError that says what is wrong, never another exception (a traceback in the page or the CLI).

Examples are kept few (<= 150 per property, no deadline) so the file runs in seconds; a failure prints the smallest
input hypothesis found, which is the regression case to add to tests/test_data_malformed.py.
"""

from __future__ import annotations

import json
import string

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from core.config import ConfigError, load_config_file, parse_config  # noqa: E402
from core.config.easydistill_v1 import JOB_TYPES, TRAINING_KEYS, import_v1  # noqa: E402
from core.config.easydistill_v2 import STAGES, import_v2  # noqa: E402
from core.data.convert import EXPORT_FORMATS, export_rows  # noqa: E402
from core.data.errors import RowInvalid  # noqa: E402
from core.data.formats import FORMATS, detect, normalize  # noqa: E402
from core.data.io import iter_records  # noqa: E402
from core.data.store import import_file  # noqa: E402
from core.errors import UserError  # noqa: E402
from core.workspace import Workspace  # noqa: E402

FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

FIELD_NAMES = sorted({f for spec in FORMATS.values() for f in spec["required"] + spec["optional"]} | {
    "id", "question", "answer", "response", "from", "value", "role", "content", "thought", "solution",
    "full_response", "Reasoning_Verbosity", "Cognitive_Difficulty", "thought_correctness_verify", "level",
    "type", "text", "data"})
scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | \
    st.text(max_size=12) | st.sampled_from(["human", "gpt", "user", "assistant", "system", "", " ", "true"])
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=6)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                      max_leaves=8)
records = st.dictionaries(keys, values, max_size=7)
mappings = st.none() | st.dictionaries(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_NAMES) | st.text(max_size=4),
                                       max_size=3)


_SCRATCH: dict = {}


def _scratch(factory):
    """One folder for every example of the session (a fresh folder per example is most of the run time)."""
    if "dir" not in _SCRATCH:
        _SCRATCH["dir"] = factory.mktemp("props")
    return _SCRATCH["dir"]


@FAST
@given(st.lists(records | scalars, max_size=6))
def test_detector_always_answers(sample):
    det = detect(sample)
    assert det.format is None or det.format in FORMATS
    if det.format is None:
        assert det.note


@FAST
@given(values | records, st.sampled_from(sorted(FORMATS)), mappings)
def test_import_converters_give_rows_or_row_invalid(record, fmt, mapping):
    try:
        rows = normalize(record, fmt, mapping)
    except RowInvalid as e:
        assert str(e)
        return
    assert rows and all(isinstance(r, dict) for r in rows)
    json.dumps(rows, default=str)


@FAST
@given(st.lists(st.tuples(records, st.sampled_from(sorted(FORMATS))), max_size=4),
       st.sampled_from(sorted(EXPORT_FORMATS)))
def test_export_converters_write_or_skip_what_import_made(tmp_path_factory, sources, fmt):
    """Any rows an import can make export to every format, or are skipped with a reason, or refused as a whole."""
    rows = []
    for record, src_fmt in sources:
        try:
            rows += normalize(record, src_fmt)
        except RowInvalid:
            continue
    out = _scratch(tmp_path_factory) / f"x{EXPORT_FORMATS[fmt]}"
    try:
        res = export_rows(rows, fmt, out)
    except UserError as e:
        assert str(e).strip()
        return
    assert res.written + len(res.skipped) == len(rows) and all(reason for _, reason in res.skipped)


printable_bytes = st.binary(max_size=200) | st.text(string.printable + "é中\u2028\ufeff", max_size=200).map(
    lambda t: t.encode("utf-8"))
json_bytes = st.lists(records, max_size=4).map(lambda rs: json.dumps(rs).encode()) | \
    st.lists(records, max_size=4).map(lambda rs: "\n".join(json.dumps(r) for r in rs).encode())
csv_bytes = st.lists(st.lists(st.text('ab",\n\r\t \\' + "é", max_size=6), min_size=1, max_size=4), max_size=5).map(
    lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8"))
any_bytes = printable_bytes | json_bytes | csv_bytes | json_bytes.map(lambda b: b.decode().encode("utf-16"))


@FAST
@given(any_bytes, st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet"]))
def test_any_file_reads_and_imports_or_says_why(tmp_path_factory, data, ext):
    root = _scratch(tmp_path_factory)
    src = root / f"in{ext}"
    src.write_bytes(data)
    try:
        for rec in iter_records(src):
            assert rec.error is None or rec.error.strip()
    except UserError as e:
        assert str(src.name) in str(e)
    ws = Workspace.open(root / "ws")
    (ws.datasets / "x.jsonl").unlink(missing_ok=True)
    try:
        res = import_file(ws, src, "x")
    except UserError as e:
        assert str(e).strip()
        return
    assert res.rows >= 1


sections = {
    "dataset": st.sampled_from(["instruction_path", "labeled_path", "output_path", "input_path", "template", "seed",
                                "logits_path", "num_in_context_samples"]),
    "inference": st.sampled_from(["base_url", "api_key", "temperature", "max_new_tokens", "top_logits_num",
                                  "system_prompt", "stream", "gpu_memory_utilization", "seed", "top_k"]),
    "models": st.sampled_from(["teacher", "student", "reward"]),
    "training": st.sampled_from(sorted(TRAINING_KEYS) + ["output_dir", "bf16", "beta"]),
    "distillation": st.sampled_from(["kd_ratio", "distillation_type", "temperature", "max_seq_length"]),
}
config_values = scalars | st.sampled_from(["~nobody-here/x", "a\x00b", "1e999", "3.7", "forward_kld", "./x.json"]) | \
    st.just(float("inf")) | st.just(1e308) | st.lists(scalars, max_size=2)
@pytest.mark.parametrize("job_type", JOB_TYPES)
def test_v1_importer_names_missing_paths_for_every_job_type(job_type):
    with pytest.raises(ConfigError) as ei:
        import_v1({"job_type": job_type}, local_backend="transformers")
    assert any("is required" in p for p in ei.value.problems)


v1_configs = st.fixed_dictionaries(
    {"job_type": st.sampled_from(JOB_TYPES) | scalars},
    optional={name: st.dictionaries(k, config_values, max_size=5) | scalars for name, k in sections.items()})


@FAST
@given(v1_configs)
def test_v1_importer_gives_a_config_or_config_error(tmp_path_factory, cfg):
    base = _scratch(tmp_path_factory)
    try:
        data, notes = import_v1(cfg, base_dir=base, local_backend="transformers")
        parse_config(data)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)


v2_stage = st.fixed_dictionaries({"stage": st.sampled_from(STAGES) | scalars}, optional={
    "config": st.dictionaries(st.sampled_from(["input_path", "cd_bins", "rv_target", "metrics", "format", "x"]),
                              config_values, max_size=3) | scalars,
    "output_path": config_values})
v2_configs = st.fixed_dictionaries({"pipeline": st.lists(v2_stage | scalars, max_size=3)}, optional={
    "backend": st.dictionaries(st.sampled_from(["type", "base_url", "model", "api_key", "concurrency", "x"]),
                               config_values, max_size=4) | scalars,
    "job_type": scalars, "input_path": config_values})


@FAST
@given(v2_configs)
def test_v2_importer_gives_a_config_or_config_error(tmp_path_factory, cfg):
    base = _scratch(tmp_path_factory)
    try:
        data, _ = import_v2(cfg, base_dir=base)
        parse_config(data)
    except ConfigError as e:
        assert e.problems


@FAST
@given(any_bytes | v1_configs.map(lambda c: json.dumps(c, default=str).encode()), st.sampled_from([".json", ".yaml"]))
def test_any_config_file_loads_or_says_why(tmp_path_factory, data, ext):
    path = _scratch(tmp_path_factory) / f"c{ext}"
    path.write_bytes(data)
    try:
        load_config_file(path)
    except ConfigError as e:
        assert e.report().strip()
