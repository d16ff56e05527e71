"""`JobForm`: widget values in, a validated and workspace-confined job config out — and back.

A room's form (`core/<room>/form.py`) is a `JobForm` with its `fields` (from `core.forms.fields.field`) and, where the
mapping is more than "each field sets its config key", a `to_data` override. The studio renders the fields, passes
the values by name and shows `FormError`s (they name the field); the CLI and tests call the same `build_job`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from core.config.base import BackendSpec, JobBase
from core.errors import UserError
from core.forms.fields import FieldSpec, coerce
from core.workspace import Workspace


class FormError(UserError, ValueError):
    """The form cannot become a job; `field` names the form field at fault (when one is), the message says why."""

    def __init__(self, message: str, field: str | None = None, code: str | None = None, **params: object):
        self.field, self.message = field, message
        self.code, self.params = code, params
        self.where: str | None = None  # the form's i18n prefix, set by the studio so the field reads as its label
        self.parts: list[FormError] = []  # several problems at once (pydantic's), each with its field and code
        super().__init__(f"{field}: {message}" if field and not message.startswith(f"{field}") else message)


def _field_of(key: str, by_path: dict[str, str]) -> str | None:
    """The form field whose config path `key` ('lora.r', 'lora.targets[0]') is, or lies under."""
    for path, name in sorted(by_path.items(), key=lambda kv: -len(kv[0])):
        if key == path or key.startswith((f"{path}.", f"{path}[")):
            return name
    return None


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """data["a"]["b"] = value for path "a.b" (creating the inner dicts)."""
    *parents, last = path.split(".")
    for p in parents:
        data = data.setdefault(p, {})
    data[last] = value


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


class JobForm:
    """A job kind's form. Subclasses set `config` (the pydantic job class) and `fields`; multi-kind forms (Training:
    SFT / KD / on-policy) override `config_for` to pick the class from the values."""

    config: ClassVar[type[JobBase]]
    fields: ClassVar[tuple[FieldSpec, ...]] = ()

    # ------------------------------------------------------------------------------------------ values → config
    def config_for(self, values: dict[str, Any]) -> type[JobBase]:
        """The job class the values describe."""
        return self.config

    def kind_of(self, values: dict[str, Any]) -> str:
        return self.config_for(values).model_fields["kind"].default

    def active_fields(self, values: dict[str, Any]) -> list[FieldSpec]:
        kind = self.kind_of(values)
        return [f for f in self.fields if f.shown_for(kind)]

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        """The config dict the values describe: each field sets its path; model pickers on a BackendSpec become
        specs; empty required fields are refused here (naming the field) rather than by pydantic's 'missing'."""
        cls = self.config_for(values)
        data: dict[str, Any] = {}
        for f in self.active_fields(values):
            if f.name not in values or not f.path:  # form-only fields (a backend choice, ...) feed overrides
                continue
            value = coerce(f, values[f.name])
            if f.widget == "model" and _is_backend(cls, f.path):
                value = self.backend_for(ws, values, f, value)
            if value is None and f.required:
                raise FormError("choose or enter a value", f.name, code="required")
            if value is None and not f.optional:
                continue  # leave the config's default
            _seed_parents(cls, data, f.path)
            set_path(data, f.path, value)
        return data

    def backend_for(self, ws: Workspace, values: dict[str, Any], f: FieldSpec, choice: Any) -> Any:
        """A model picker feeding a BackendSpec field: the spec (`backend` value picks transformers / vllm)."""
        from core.endpoints import spec_for

        spec = spec_for(choice, ws, values.get("backend") or "transformers")
        return None if spec is None else spec.model_dump(exclude_defaults=True)

    def build_job(self, ws: Workspace, values: dict[str, Any], confine: bool = True) -> JobBase:
        """Validate the values into a job config (errors name the field); a web visitor's config is confined to the
        workspace (`confine`), a local CLI user may name any path."""
        from core.refs import confine_paths

        cls = self.config_for(values)
        data = self.to_data(ws, values)
        try:
            job = cls.model_validate(data)
        except ValidationError as e:
            raise self.form_error(e, self.active_fields(values)) from None
        if confine:
            confine_paths(job, ws)
        return job

    def form_error(self, err: ValidationError, fields: Iterable[FieldSpec] | None = None) -> FormError:
        """pydantic's errors as one FormError (English: each problem naming its form field) whose `parts` say each
        problem with its field and, where pydantic's type is a common one, a code the studio words."""
        from core.config.errors import explain, problems

        fields = list(self.fields if fields is None else fields)
        by_path = {f.path: f.name for f in fields if f.path}
        error = FormError("; ".join(self._name_fields(explain(err), fields)))
        error.parts = [FormError(p.text, _field_of(p.key, by_path), code=p.code, **p.params) for p in problems(err)]
        return error

    def _name_fields(self, problems: Iterable[str], fields: Iterable[FieldSpec] | None = None) -> list[str]:
        """pydantic says 'lora.r'; the person sees the field they typed into, so say its form name too. `fields`: the
        ones in use (a multi-kind form has several fields on one path, e.g. KD's and on-policy's `beta`)."""
        by_path = {f"'{f.path}'": f.name for f in (self.fields if fields is None else fields)
                   if f.path and f.name != f.path}
        return [next((f"{name}: {p}" for path, name in by_path.items() if p.startswith(path)), p) for p in problems]

    # ------------------------------------------------------------------------------------------ config → values
    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields}

    def values_of(self, job: JobBase, ws: Workspace) -> dict[str, Any]:
        """The form values that describe `job` (to load a YAML or a past job's config back into the form)."""
        from core.endpoints import choice_for

        out = {}
        for f in self.fields:
            if not f.path:
                continue
            v = get_path(job, f.path)
            if isinstance(v, BackendSpec):
                v = choice_for(v, ws)
            elif isinstance(v, BaseModel):
                continue
            out[f.name] = f.default if v is None and not f.optional else v
        return out

    def kinds(self) -> tuple[str, ...]:
        """The job kinds this form submits (and whose past jobs it can load)."""
        kinds = {self.config.model_fields["kind"].default}
        for f in self.fields:
            kinds.update(f.kinds)
        return tuple(sorted(kinds))

    def accepts(self, job: JobBase) -> bool:
        """Whether `job` can be loaded into this form."""
        return job.kind in self.kinds()

    # ------------------------------------------------------------------------------------------ preview
    @staticmethod
    def preview(ws: Workspace, job: JobBase) -> tuple[str, str]:
        """(YAML, CLI): the config the form will submit, and the headless command that runs it."""
        from core.config.io import dump_yaml

        name = f"{(job.name or job.kind).replace(' ', '-')}.yaml"
        cli = f"easydistill --workspace {shlex.quote(str(ws.root))} --config {shlex.quote(name)}"
        return dump_yaml(job), cli


def _seed_parents(cls: type[BaseModel], data: dict[str, Any], path: str) -> None:
    """Before setting "sampling.max_new_tokens", start "sampling" from the config's own default for it (an
    EvaluateJob samples greedily by default; a bare Sampling would not)."""
    from core.forms.fields import locate

    parts = path.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if get_path(data, parent) is None:
            _, default = locate(cls, parent)
            set_path(data, parent, default.model_dump(exclude_unset=False) if isinstance(default, BaseModel) else {})


def _is_backend(cls: type[BaseModel], path: str) -> bool:
    from core.forms.fields import locate, unwrap_optional

    info, _ = locate(cls, path)
    ann, _ = unwrap_optional(info.annotation)
    return ann is BackendSpec
