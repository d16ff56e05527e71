"""Presets: ready job configs (YAML) with what they need to run, loadable from every tab and the CLI.

A preset file is `{preset: {title, description, needs}, job: <a job config>}`; `easydistill --config preset.yaml`
runs its job like any config. Bundled presets live in `presets/`; users save their own into `workspace/presets/`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field

from core.config.base import JobBase, StrictModel
from core.config.errors import ConfigError
from core.config.io import load_config_file, to_dict
from core.devices import Device
from core.workspace import Workspace

BUNDLED = Path(__file__).resolve().parent.parent / "presets"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class After(StrictModel):
    """What an earlier preset leaves in the workspace and this one starts from (demo-dpo-cpu continues demo-cpu)."""

    preset: str = Field(description="the preset that makes them (its name)")
    models: list[str] = Field(default_factory=list, description="workspace models it must have made")
    datasets: list[str] = Field(default_factory=list, description="workspace datasets it must have made")


class Needs(StrictModel):
    gpus: int = Field(0, ge=0, description="GPUs the preset needs (0 = runs on CPU)")
    gpu_memory_gb: float = Field(0, ge=0, description="memory per GPU")
    models: list[str] = Field(default_factory=list, description="models it downloads or expects")
    env: list[str] = Field(default_factory=list, description="environment variables it reads (API keys)")
    after: After | None = Field(None, description="an earlier preset whose outputs this one continues from")
    minutes: str = Field("", description="rough duration on the machine it targets")


class PresetMeta(StrictModel):
    title: dict[str, str] = Field(default_factory=dict, description="per language: en, zh")
    description: dict[str, str] = Field(default_factory=dict)
    needs: Needs = Field(default_factory=Needs)


@dataclass
class Preset:
    name: str
    path: Path
    meta: PresetMeta
    config: JobBase
    notes: list[str]

    def title(self, lang: str = "en") -> str:
        return self.meta.title.get(lang) or self.meta.title.get("en") or self.name

    def description(self, lang: str = "en") -> str:
        return self.meta.description.get(lang) or self.meta.description.get("en", "")


def preset_dirs(ws: Workspace | None) -> list[Path]:
    return [BUNDLED] + ([ws.presets] if ws else [])


def list_presets(ws: Workspace | None = None) -> list[Preset]:
    """Every readable preset; a broken user preset is skipped here and reported when loaded by name."""
    out: dict[str, Preset] = {}
    for d in preset_dirs(ws):
        for f in sorted(d.glob("*.yaml")):
            try:
                out[f.stem] = load_preset(f)
            except ConfigError:
                continue
    return list(out.values())


def find_preset(name: str, ws: Workspace | None = None) -> Preset:
    for d in reversed(preset_dirs(ws)):
        f = d / f"{name}.yaml"
        if f.is_file():
            return load_preset(f)
    raise ConfigError([f"no preset named '{name}'; known: {', '.join(p.name for p in list_presets(ws))}"])


def load_preset(path: Path) -> Preset:
    from core.config.io import read_mapping

    data = read_mapping(path)
    if not isinstance(data, dict) or "preset" not in data:
        raise ConfigError(["a preset file needs a 'preset' section (title, description, needs) and a 'job'"], str(path))
    try:
        meta = PresetMeta.model_validate(data["preset"] or {})
    except Exception as e:  # pydantic ValidationError: explained like any config
        from pydantic import ValidationError

        from core.config.errors import explain

        if isinstance(e, ValidationError):
            raise ConfigError(["preset." + p.strip("'") for p in explain(e)], str(path)) from None
        raise
    config, notes = load_config_file(path)
    return Preset(path.stem, path, meta, config, notes)


def check_machine(preset: Preset, gpus: list[Device], ws: Workspace | None = None) -> list[str]:
    """Why this machine (and, given `ws`, this workspace) cannot run the preset (empty = it can), said up front
    instead of failing mid-run."""
    needs = preset.meta.needs
    problems = []
    if needs.gpus and len(gpus) < needs.gpus:
        problems.append(f"needs {needs.gpus} GPU(s); this machine has {len(gpus) or 'none'}")
    if needs.gpu_memory_gb and gpus:
        small = [g for g in gpus if g.memory_total_mb / 1024 < needs.gpu_memory_gb]
        if len(gpus) - len(small) < max(needs.gpus, 1):
            problems.append(f"needs {needs.gpu_memory_gb:g} GB per GPU; largest here has "
                            f"{max(g.memory_total_mb for g in gpus) / 1024:.0f} GB")
    missing_env = [v for v in needs.env if not os.environ.get(v)]
    if missing_env:
        problems.append(f"set the environment variable(s) {', '.join(missing_env)} before starting the studio")
    if ws is not None:
        problems += check_workspace(preset, ws)
    return problems


def check_workspace(preset: Preset, ws: Workspace) -> list[str]:
    """What an `after` preset should have left in the workspace and did not: one message naming the preset to run
    first (a missing model would otherwise stop the job minutes in, as 'unknown model')."""
    after = preset.meta.needs.after
    if after is None:
        return []
    lacking = [f"model {m}" for m in after.models if not (ws.models / m).is_dir()]
    lacking += [f"dataset {d}" for d in after.datasets if not (ws.datasets / f"{d}.jsonl").is_file()]
    if not lacking:
        return []
    source = BUNDLED / f"{after.preset}.yaml"
    where = source if source.is_file() else ws.presets / f"{after.preset}.yaml"
    return [f"continues the preset {after.preset}, whose outputs this workspace lacks ({', '.join(lacking)}): run "
            f"it first in the same workspace (easydistill --workspace {ws.root} --config {where}, or from the Start "
            f"tab)"]


def preset_of_file(path: str | os.PathLike) -> Preset | None:
    """The preset a config file is, or None for a plain job config (or one that does not load: reported elsewhere)."""
    from core.config.io import read_mapping

    try:
        data = read_mapping(Path(path))
    except (ConfigError, OSError):
        return None
    if not (isinstance(data, dict) and "preset" in data and "job" in data):
        return None
    try:
        return load_preset(Path(path))
    except ConfigError:
        return None


def save_preset(config: JobBase, name: str, ws: Workspace, meta: PresetMeta | None = None) -> Path:
    """Save the current settings as a user preset (secrets are never written)."""
    if not NAME.match(name):
        raise ConfigError([f"preset name {name!r}: use letters, digits, '-', '_' or '.' (up to 64)"])
    meta = meta or PresetMeta(title={"en": name})
    path = ws.presets / f"{name}.yaml"
    doc = {"preset": meta.model_dump(exclude_defaults=True), "job": to_dict(config, keep_defaults=False)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
