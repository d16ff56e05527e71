"""Pure parts of core.jobs: device requests, packing/queueing, launch commands, progress/ETA, run-folder readers,
failure classification. No processes here (tests/test_jobs_run.py has those)."""

from __future__ import annotations

import json

import pytest

from core.config.io import parse_config
from core.config.selftest import SelftestJob
from core.jobs.failure import classify_exception, classify_exit
from core.jobs.launch import distributed_command, job_env, needs_distributed, worker_command
from core.jobs.progress import compute, series
from core.jobs.rundir import JsonlTail, tail_text, update_status, write_json_atomic
from core.jobs.scheduler import (
    DeviceRequestError,
    Request,
    Waiting,
    cuda_visible_devices,
    plan,
    resolve_request,
)


def sft(**kw):
    return parse_config({"kind": "train_sft", "student": "s", "dataset": "d", **kw})


# device requests ----------------------------------------------------------------------------------------------------


def test_auto_means_the_kind_default_on_gpu_boxes_and_cpu_elsewhere():
    assert resolve_request("auto", sft(), [0, 1]) == Request(1)
    assert resolve_request("auto", sft(), []).cpu
    assert resolve_request("auto", SelftestJob(), [0, 1]).cpu  # selftest wants no GPU
    assert resolve_request("cpu", sft(), [0, 1]).cpu
    assert resolve_request(2, sft(), [0, 1]) == Request(2)
    assert resolve_request([1], sft(), [0, 1]) == Request(1, (1,))


def test_pipeline_auto_takes_the_most_any_step_wants():
    pipe = parse_config({"kind": "pipeline", "steps": [
        {"name": "a", "job": {"kind": "selftest"}},
        {"name": "b", "job": {"kind": "train_sft", "student": "s", "dataset": "d"}},
    ]})
    assert resolve_request("auto", pipe, [0, 1, 2]) == Request(1)


@pytest.mark.parametrize("gpus, inventory, words", [
    (2, [], "has none"),
    (3, [0, 1], "has 2"),
    ([5], [0, 1], "lacks"),
    ("lots", [0], "not understood"),
])
def test_impossible_requests_are_refused_with_a_reason(gpus, inventory, words):
    with pytest.raises(DeviceRequestError, match=words):
        resolve_request(gpus, sft(), inventory)


# packing and queueing -------------------------------------------------------------------------------------------------


def w(job_id, count=0, indices=None):
    return Waiting(job_id, Request(count, tuple(indices) if indices is not None else None))


def test_one_gpu_jobs_are_packed_onto_free_gpus():
    starts = plan([w("a", 1), w("b", 1), w("c", 1)], [0, 1], set(), 0, 2)
    assert starts == [("a", ["cuda:0"]), ("b", ["cuda:1"])]


def test_a_job_that_does_not_fit_blocks_later_gpu_jobs_fifo():
    # GPU 1 is free, but the 2-GPU job "big" was queued first: "small" must not overtake it.
    starts = plan([w("big", 2), w("small", 1)], [0, 1], {0}, 0, 2)
    assert starts == []
    starts = plan([w("big", 2), w("small", 1)], [0, 1], set(), 0, 2)
    assert starts == [("big", ["cuda:0", "cuda:1"])]


def test_cpu_jobs_never_wait_for_gpus_and_share_cpu_slots():
    queue = [w("big", 2), w("c1"), w("c2"), w("c3")]
    assert plan(queue, [0, 1], {0}, 0, 2) == [("c1", ["cpu"]), ("c2", ["cpu"])]
    assert plan(queue, [0, 1], {0}, 2, 2) == []


def test_exact_indices_wait_for_exactly_those():
    assert plan([w("x", 1, [1])], [0, 1], {1}, 0, 2) == []
    assert plan([w("x", 1, [1])], [0, 1], {0}, 0, 2) == [("x", ["cuda:1"])]


def test_held_jobs_keep_their_place_and_block_their_class():
    queue = [w("secret", 1), w("next", 1), w("cpu")]
    assert plan(queue, [0, 1], set(), 0, 2, hold={"secret"}) == [("cpu", ["cpu"])]


def test_cuda_visible_devices_value():
    assert cuda_visible_devices(["cuda:2", "cuda:0"]) == "2,0"
    assert cuda_visible_devices(["cpu"]) == ""


# launch ---------------------------------------------------------------------------------------------------------------


def test_multi_gpu_training_goes_through_accelerate_launch(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    cmd = distributed_command(2, tmp_path, step="train", python="/py", port=29555)
    assert cmd[:3] == ["/py", "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])  # accelerate's own parser accepts it
    assert args.num_processes == 2 and args.multi_gpu and args.module
    assert args.training_script == "core.jobs.worker"
    assert args.training_script_args == [str(tmp_path), "--rank", "--step", "train"]
    assert args.main_process_port == 29555


def test_only_training_kinds_on_several_gpus_are_distributed():
    assert needs_distributed(sft(), ["cuda:0", "cuda:1"])
    assert not needs_distributed(sft(), ["cuda:0"])
    assert not needs_distributed(SelftestJob(), ["cuda:0", "cuda:1"])
    assert worker_command("/r", python="/py") == ["/py", "-m", "core.jobs.worker", "/r"]


def test_job_env_sets_devices_and_drops_foreign_secrets(tmp_path):
    base = {"PATH": "/bin", "EDS_SECRET_OTHER": "x", "CUDA_VISIBLE_DEVICES": "7", "RANK": "3"}
    env = job_env(base, job_id="j", run_dir=tmp_path, workspace_root=tmp_path, devices=["cuda:1"],
                  secrets={"EDS_SECRET_MINE": "k"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["EDS_SECRET_MINE"] == "k"
    assert "EDS_SECRET_OTHER" not in env and "RANK" not in env
    assert job_env(base, job_id="j", run_dir=tmp_path, workspace_root=tmp_path, devices=["cpu"])[
        "CUDA_VISIBLE_DEVICES"] == ""


# progress ---------------------------------------------------------------------------------------------------------


def test_progress_and_eta_from_metric_lines():
    recs = [{"time": 100.0 + i, "step": i, "total": 10, "loss": 1.0 / i} for i in range(1, 6)]
    p = compute(recs, now=105.0)
    assert p.fraction == 0.5 and p.step == 5
    assert p.eta_s == pytest.approx(5.0)  # one step per second, five to go
    assert [s for s, _, _ in series(recs)["loss"]] == [1, 2, 3, 4, 5]


def test_pipeline_progress_counts_finished_stages():
    recs = [{"time": 1.0, "step": 3, "total": 3, "stage": "a"}, {"time": 2.0, "step": 1, "total": 4, "stage": "b"}]
    assert compute(recs, stages=["a", "b"]).fraction == pytest.approx((1 + 0.25) / 2)


def test_eta_restarts_after_a_resume():
    # attempt 1 reached step 6 slowly; attempt 2 (resumed) goes fast from 6: the old pace must not count.
    recs = [{"time": float(10 * i), "step": i, "total": 10} for i in range(1, 7)]
    recs += [{"time": 1000.0 + i, "step": 6 + i, "total": 10, "attempt": 2} for i in range(1, 4)]
    assert compute(recs).eta_s == pytest.approx(1.0)  # the first line of an attempt ends its warm-up


# run folder readers ---------------------------------------------------------------------------------------------------


def test_jsonl_reader_tolerates_a_half_written_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"ste', encoding="utf-8")
    reader = JsonlTail(path)
    assert [r["step"] for r in reader.read()] == [1, 2]
    with open(path, "a", encoding="utf-8") as f:
        f.write('p": 3}\nnot json\n')
    assert [r["step"] for r in reader.read()] == [1, 2, 3]


def test_tail_text_returns_last_lines_of_big_files(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)), encoding="utf-8")
    assert tail_text(path, 3).splitlines() == ["line 99997", "line 99998", "line 99999"]


def test_status_writes_are_atomic_merges(tmp_path):
    write_json_atomic(tmp_path / "status.json", {"id": "x", "status": "queued"})
    update_status(tmp_path, status="running", pid=5)
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["id"] == "x" and data["status"] == "running" and data["pid"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp files left behind


# failure reasons --------------------------------------------------------------------------------------------------


def _raise(exc):
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001
        return e


def test_oom_gets_a_hint():
    class OutOfMemoryError(RuntimeError):
        pass

    f = classify_exception(_raise(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")))
    assert f.category == "oom" and f.reason.startswith("GPU out of memory")
    assert "batch size" in f.detail and "LoRA" in f.detail and "max length" in f.detail


def test_missing_file_and_bad_config_and_plain_exceptions():
    f = classify_exception(_raise(FileNotFoundError(2, "No such file", "/data/x.jsonl")))
    assert f.category == "missing_file" and "/data/x.jsonl" in f.reason
    from core.config.errors import ConfigError

    f = classify_exception(_raise(ConfigError(["'steps' is required but missing"], "job.yaml")))
    assert f.category == "bad_config" and "'steps'" in f.reason
    f = classify_exception(_raise(ValueError("token sk-abcdefghijklmnop leaked")), secrets=["leaked"])
    assert f.reason.startswith("ValueError:") and "sk-abcdefghijklmnop" not in f.reason + f.detail
    assert "test_jobs_units.py" in f.detail  # the last traceback lines


def test_signals_are_named():
    assert "SIGKILL" in classify_exit(-9).reason and "memory" in classify_exit(-9).reason
    assert "SIGTERM" in classify_exit(-15).reason
    assert "code 3" in classify_exit(3).reason
