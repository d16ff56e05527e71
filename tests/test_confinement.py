"""Confinement by resolved path (core.workspace): a symlink planted in any folder a web visitor reaches — datasets/,
models/, runs/, exports, uploads, templates — leads nowhere: the Data tab's page view, stats and export, the pickers'
model loading, run logs and job submission (web and CLI) refuse it with a message naming the link and nothing is
read from or written to the place it points to. And the CLI's one rule: a local user names any path explicitly, but
a path into the workspace never leads out of it through a link; a config file's relative `output:` is anchored at
the config's folder, as the README says."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from core.config import load_config_file, parse_config
from core.data import store
from core.data.convert import export_dataset
from core.data.import_form import source_path
from core.data.ops import dedupe_dataset, split_dataset
from core.data.stats import dataset_stats, tokenizer_dir
from core.data.view import browse_file
from core.refs import check_links, confine_paths
from core.workspace import LinkOutsideWorkspace, PathOutsideWorkspace, Workspace

SECRET = "SECRET-ROW-OUTSIDE"


def _row(text: str) -> str:
    return json.dumps({"instruction": text, "output": "answer"}) + "\n"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the workspace holding what a link must never reveal or overwrite."""
    out = tmp_path / "outside"
    (out / "model").mkdir(parents=True)
    (out / "secret.jsonl").write_text(_row(SECRET), encoding="utf-8")
    (out / "model" / "config.json").write_text('{"model_type": "qwen2"}', encoding="utf-8")
    (out / "model" / "tokenizer.json").write_text("{}", encoding="utf-8")
    (out / "template.txt").write_text("SECRET {instruction}", encoding="utf-8")
    return out


def _untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["model", "secret.jsonl", "template.txt"]
    assert (outside / "secret.jsonl").read_text(encoding="utf-8") == _row(SECRET)


def _refused(call, link: str) -> None:
    with pytest.raises(LinkOutsideWorkspace) as e:
        call()
    assert e.value.code == "link_outside" and e.value.params == {"path": link}
    assert SECRET not in str(e.value) and "outside" in str(e.value)


def test_dataset_link_refused_by_every_data_view(workspace, outside):
    ws = workspace
    os.symlink(outside / "secret.jsonl", ws.datasets / "evil.jsonl")
    (ws.datasets / "ok.jsonl").write_text(_row("fine"), encoding="utf-8")
    listed = {d.name: d for d in store.list_datasets(ws)}
    assert listed["evil"].rows == 0 and listed["evil"].format == "link outside the workspace"  # listed, never read
    assert listed["ok"].rows == 1
    link = "datasets/evil.jsonl"
    for call in (lambda: browse_file(ws, "evil"), lambda: dataset_stats(ws, "evil"),
                 lambda: export_dataset(ws, "evil", "alpaca"), lambda: store.load_rows(ws, "evil"),
                 lambda: store.load_rows(ws, "evil", confined=False), lambda: split_dataset(ws, "evil", 0.5),
                 lambda: dedupe_dataset(ws, "evil"),
                 lambda: store.resolve_dataset(ws, link), lambda: source_path(ws, link)):
        _refused(call, link)
    # Writing a dataset of that name (import, save) refuses too: the outside file is not overwritten.
    _refused(lambda: store.import_file(ws, ws.datasets / "ok.jsonl", "evil", overwrite=True), link)
    _refused(lambda: store.save_rows(ws, "evil", [{"id": "1", "instruction": "x"}], "test"), link)
    # A dangling link is a write waiting to happen elsewhere: refused before anything is created there.
    os.symlink(outside / "planted.jsonl", ws.datasets / "new.jsonl")
    _refused(lambda: store.save_rows(ws, "new", [{"id": "1", "instruction": "x"}], "test"), "datasets/new.jsonl")
    _untouched(outside)


def test_sidecar_exports_and_uploads_links_refused(workspace, outside, tmp_path):
    ws = workspace
    (ws.datasets / "ok.jsonl").write_text(_row("fine"), encoding="utf-8")
    os.symlink(outside / "secret.jsonl", ws.datasets / "ok.meta.json")
    assert {d.name: d.format for d in store.list_datasets(ws)}["ok"] == "link outside the workspace"
    _refused(lambda: store.read_meta(ws, "ok"), "datasets/ok.meta.json")
    (ws.datasets / "ok.meta.json").unlink()

    os.symlink(outside, ws.datasets / "exports")  # the export folder itself leads out
    _refused(lambda: export_dataset(ws, "ok", "alpaca"), "datasets/exports")

    (ws.datasets / "uploads").mkdir()
    os.symlink(outside / "secret.jsonl", ws.datasets / "uploads" / "data.jsonl")
    upload = tmp_path / "gradio-tmp" / "data.jsonl"
    upload.parent.mkdir()
    upload.write_text(_row("uploaded"), encoding="utf-8")
    _refused(lambda: store.take_upload(ws, upload), "datasets/uploads/data.jsonl")  # not copied over the target
    _refused(lambda: source_path(ws, "datasets/uploads/data.jsonl"), "datasets/uploads/data.jsonl")
    _untouched(outside)


def test_model_template_and_cache_links_refused(workspace, outside):
    from core.models.registry import list_models, resolve_model
    from core.synth.templates import save_template, template_text

    ws = workspace
    os.symlink(outside / "model", ws.models / "evil")
    _refused(lambda: resolve_model("evil", ws), "models/evil")
    _refused(lambda: tokenizer_dir(ws, "evil"), "models/evil")
    listed = {m.name: m for m in list_models(ws)}
    assert "outside the workspace" in listed["evil"].error and listed["evil"].architecture in (None, "")
    os.symlink(outside / "template.txt", ws.templates / "mine.txt")
    _refused(lambda: template_text(ws, "label", "mine"), "templates/mine.txt")
    _refused(lambda: save_template(ws, "mine", "label", "{instruction}"), "templates/mine.txt")
    os.symlink(outside, ws.cache / "teacher-k8")
    _refused(lambda: check_links(parse_config({"kind": "train_kd", "student": "s", "teacher": "t",
                                                "dataset": "d", "logits": "teacher-k8"}), ws), "cache/teacher-k8")
    _untouched(outside)


def test_workspace_folder_that_is_a_link_is_refused_unless_allowed(tmp_path, outside):
    root = tmp_path / "ws2"
    root.mkdir()
    os.symlink(outside, root / "runs")
    with pytest.raises(LinkOutsideWorkspace, match="'runs' is a link"):
        Workspace.open(root)
    ws = Workspace.open(root, [outside])  # the operator allowed it (--allow-root / EDS_ALLOW_ROOTS)
    assert ws.inside(ws.runs) == ws.runs


def test_env_allowed_roots_reach_every_workspace(tmp_path, outside, monkeypatch):
    """The studio's --allow-root reaches its job processes and the CLI through EDS_ALLOW_ROOTS."""
    ws = Workspace.open(tmp_path / "ws3")
    os.symlink(outside / "model", ws.models / "shared")
    _refused(lambda: ws.inside(ws.models / "shared"), "models/shared")
    monkeypatch.setenv("EDS_ALLOW_ROOTS", str(outside))
    assert Workspace(ws.root).inside(ws.models / "shared") == ws.models / "shared"
    assert Workspace.open(ws.root).extra_roots == [outside.resolve()]


def test_job_submit_refuses_links_for_web_and_cli(workspace, outside, tmp_path, capsys):
    from core.cli.main import main
    from core.jobs.manager import JobManager

    ws = workspace
    os.symlink(outside / "secret.jsonl", ws.datasets / "evil.jsonl")
    os.symlink(outside, ws.datasets / "linkdir")
    train = parse_config({"kind": "train_sft", "student": "tiny", "dataset": "evil"})
    synth_out = parse_config({"kind": "synth", "input": "qa", "output": "datasets/linkdir/out.jsonl",
                              "teacher": {"model": "tiny"}})
    synth_name = parse_config({"kind": "synth", "input": "qa", "output": "evil", "teacher": {"model": "tiny"}})
    for config, key, link in ((train, "dataset", "datasets/evil.jsonl"),
                              (synth_out, "output", "datasets/linkdir"), (synth_name, "output", "datasets/evil.jsonl")):
        for check in (confine_paths, check_links):  # the web form's check, and every submission's
            with pytest.raises(LinkOutsideWorkspace) as e:
                check(config, ws)
            assert e.value.field == key and e.value.params == {"path": link}
    m = JobManager(ws, attach=False)
    with pytest.raises(LinkOutsideWorkspace, match="'dataset'"):
        m.submit(train)
    assert not list(ws.runs.iterdir()) and m.list(refresh=False) == []  # refused before any run folder

    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump({"kind": "train_sft", "student": "tiny", "dataset": "evil"}), encoding="utf-8")
    assert main(["--workspace", str(ws.root), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "datasets/evil.jsonl' is a link" in err and "Traceback" not in err
    _untouched(outside)


def test_run_log_link_is_not_shown(workspace, outside):
    from core.jobs.manager import JobManager

    m = JobManager(workspace, attach=False, cpu_slots=0)  # no slot: the job stays queued, no worker starts
    job_id = m.submit(parse_config({"kind": "selftest", "steps": 1}))
    log = Path(m.get(job_id, refresh=False).run_dir) / "log.txt"
    log.unlink(missing_ok=True)
    os.symlink(outside / "secret.jsonl", log)
    text = m.logs(job_id)
    assert SECRET not in text and "link that leads outside the workspace" in text


# ------------------------------------------------------------------------------------------------ the CLI's rule


def test_cli_names_any_path_but_never_escapes_through_a_workspace_link(workspace, outside, tmp_path, capsys,
                                                                       monkeypatch):
    from core.cli.main import main

    ws = workspace
    os.symlink(outside, ws.datasets / "linkdir")
    os.symlink(outside / "secret.jsonl", ws.datasets / "evil.jsonl")
    plain = tmp_path / "elsewhere" / "plain.jsonl"
    plain.parent.mkdir()
    plain.write_text(_row("plain row") + _row("second row"), encoding="utf-8")
    monkeypatch.chdir(plain.parent / "..")

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--workspace", str(ws.root), "data", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    # Explicit paths anywhere on the machine: absolute, or relative to the current folder (with ..).
    assert cli("show", str(plain))[1].count("plain row") == 1
    assert "plain row" in cli("show", "elsewhere/../elsewhere/plain.jsonl")[1]
    code, out, _ = cli("split", str(plain), "--eval-share", "0.5")
    assert code == 0 and (ws.datasets / "plain-train.jsonl").is_file() and (ws.datasets / "plain-eval.jsonl").is_file()
    assert cli("export", "plain-train", "--format", "alpaca", "--out", str(tmp_path / "x.json"))[0] == 0
    assert (tmp_path / "x.json").is_file()
    # A workspace name or path that leads out through a link: refused with the link named, exit 2, no traceback.
    for args in (("show", "evil"), ("show", str(ws.datasets / "evil.jsonl")), ("stats", "evil"),
                 ("export", "plain-train", "--format", "alpaca", "--out", str(ws.datasets / "linkdir" / "o.json")),
                 ("import", str(ws.datasets / "linkdir" / "secret.jsonl"), "--name", "stolen")):
        code, out, err = cli(*args)
        assert code == 2 and "is a link that leads outside the workspace" in err and SECRET not in out + err, args
    _untouched(outside)


def test_config_output_anchors_at_the_config_folder(workspace, outside, tmp_path):
    from core.synth.job import output_target

    ws = workspace
    folder = tmp_path / "configs"
    folder.mkdir()
    job = {"kind": "synth", "input": "qa", "teacher": {"model": "tiny"}}
    (folder / "a.yaml").write_text(yaml.safe_dump({**job, "output": "out/labelled.jsonl"}), encoding="utf-8")
    (folder / "b.yaml").write_text(yaml.safe_dump({**job, "output": "labelled"}), encoding="utf-8")
    a, _ = load_config_file(folder / "a.yaml")
    assert a.output == str(folder / "out" / "labelled.jsonl")
    assert output_target(ws, a).rows == folder.resolve() / "out" / "labelled.jsonl"
    b, _ = load_config_file(folder / "b.yaml")
    assert b.output == "labelled" and output_target(ws, b).rows == ws.datasets / "labelled.jsonl"
    # A config kept in the workspace whose output goes through a link planted there: refused at submit and in the job.
    os.symlink(outside, ws.datasets / "linkdir")
    (ws.root / "c.yaml").write_text(yaml.safe_dump({**job, "output": "datasets/linkdir/x.jsonl"}), encoding="utf-8")
    c, _ = load_config_file(ws.root / "c.yaml")
    _refused(lambda: check_links(c, ws), "datasets/linkdir")
    _refused(lambda: output_target(ws, c), "datasets/linkdir")
    # From the web (no config file), a relative output is the workspace's; outside it, refused.
    web = parse_config({**job, "output": "exports/x.jsonl"})
    assert output_target(ws, web).rows == ws.root / "exports" / "x.jsonl"
    with pytest.raises(PathOutsideWorkspace):
        confine_paths(parse_config({**job, "output": str(outside / "x.jsonl")}), ws)
    _untouched(outside)
