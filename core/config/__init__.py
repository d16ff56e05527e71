"""Job configs: pydantic models per job kind, YAML in and out, EasyDistill 1.x import (see easydistill_v1)."""

from core.config.base import BackendSpec, EndpointSpec, JobBase, Sampling
from core.config.errors import ConfigError
from core.config.io import dump_yaml, load_config_file, parse_config, to_dict
from core.config.registry import KINDS, JobConfig, PipelineJob, PipelineStep

__all__ = [
    "BackendSpec", "ConfigError", "EndpointSpec", "JobBase", "JobConfig", "KINDS", "PipelineJob", "PipelineStep",
    "Sampling", "dump_yaml", "load_config_file", "parse_config", "to_dict",
]
