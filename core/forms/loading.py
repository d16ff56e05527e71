"""Configs to load back into a form: a YAML / JSON file a person uploads, or the config a past job ran with."""

from __future__ import annotations

from typing import Any

from core.config.base import JobBase


def config_from_file(path: str) -> JobBase:
    """A studio YAML, a preset file or an EasyDistill 1.x JSON as a job config (ConfigError names what is wrong)."""
    from core.config.io import load_config_file

    job, _notes = load_config_file(path, anchor_paths=False)
    return job


def config_of_job(jobs: Any, job_id: str) -> JobBase:
    """The validated config a past job ran with (its run folder's job.yaml; secrets were never written there)."""
    import yaml

    from core.config.errors import ConfigError
    from core.config.io import parse_config

    text = jobs.config_text(job_id)
    if not text:
        raise ConfigError(["its run folder has no readable job.yaml"], f"job {job_id}")
    return parse_config(yaml.safe_load(text), source=f"job {job_id}")
