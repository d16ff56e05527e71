"""A form field read from a job's pydantic config: which widget, its default, choices, bounds and help.

Nothing about a knob is copied into the studio: `field(KdJob, "kd_ratio")` finds `kd_ratio: float = Field(0.5, ge=0,
le=1, description=...)` and says "a float slider from 0 to 1, default 0.5, help ...". Dotted paths reach nested
configs (`"lora.r"`, `"sampling.temperature"`); a nested default comes from the parent's default instance, so
`EvaluateJob`'s greedy sampling shows temperature 0, not `Sampling`'s 0.8.
"""

from __future__ import annotations

import functools
import math
import operator
import types
import typing
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

# Widget kinds a renderer must know. Pickers ("model", "dataset", "cache", "endpoint") get their choices at render time.
Widget = Literal["bool", "int", "float", "slider", "choice", "multi", "text", "code", "model", "dataset", "cache"]
PICKERS = ("model", "dataset", "cache")
_MISSING = object()


@dataclass(frozen=True)
class FieldSpec:
    """One field of a form. `name` is the form's key (i18n key `<prefix>.<name>`, elem id), `path` the config key."""

    name: str
    path: str
    widget: Widget
    default: Any = None
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    help: str = ""
    required: bool = False
    optional: bool = False  # the config accepts None (an empty widget means "not set")
    group: str = "main"  # the section it is laid out in (the tab decides where each group goes)
    kinds: tuple[str, ...] = ()  # only for these job kinds of a multi-kind form (empty: all)
    # renderer hints (lines, scale, ...; "choices_of": workspace -> choices, for a picker a room above forms lists)
    extra: dict[str, Any] = dc_field(default_factory=dict, compare=False)

    def shown_for(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


def unwrap_optional(ann: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`; (ann, False) otherwise."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) < len(typing.get_args(ann)):
            return functools.reduce(operator.or_, args), True
    return ann, False


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in info.metadata:
        for attr in ("ge", "gt"):
            v = getattr(m, attr, None)
            if v is not None:
                lo = float(v)
        for attr in ("le", "lt"):
            v = getattr(m, attr, None)
            if v is not None:
                hi = float(v)
    return lo, hi


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return _MISSING if info.is_required() else info.default


def locate(model: type[BaseModel], path: str) -> tuple[FieldInfo, Any]:
    """The FieldInfo at a dotted path, and its effective default (from the parent's default instance if any)."""
    cls: Any = model
    parent_default: Any = _MISSING
    info: FieldInfo | None = None
    default: Any = _MISSING
    for part in path.split("."):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            raise KeyError(f"{model.__name__} has no field '{path}'")
        info = cls.model_fields[part]
        if parent_default is not _MISSING and parent_default is not None:
            default = getattr(parent_default, part)
        else:
            default = _default(info)
        parent_default = default
        ann, _ = unwrap_optional(info.annotation)
        cls = ann
    assert info is not None
    return info, default


def field(model: type[BaseModel], path: str, *, name: str | None = None, widget: Widget | None = None,
          **overrides: Any) -> FieldSpec:
    """The form field for `model`'s `path`, read from the config; `overrides` set what the config cannot say
    (the widget, a group, a nicer default for the form, extra renderer hints)."""
    info, default = locate(model, path)
    ann, optional = unwrap_optional(info.annotation)
    lo, hi = _bounds(info)
    choices: tuple[Any, ...] = ()
    origin = typing.get_origin(ann)
    if widget is None:
        if origin is Literal:
            widget, choices = "choice", typing.get_args(ann)
        elif origin is list and typing.get_origin(typing.get_args(ann)[0]) is Literal:
            widget, choices = "multi", typing.get_args(typing.get_args(ann)[0])
        elif ann is bool:
            widget = "bool"
        elif ann is int:
            widget = "int"
        elif ann is float:
            widget = "slider" if lo is not None and hi is not None and hi - lo <= 1 else "float"
        else:
            widget = "text"
    elif origin is Literal and widget in ("choice", "multi"):
        choices = typing.get_args(ann)
    elif origin is list and widget == "multi" and typing.get_origin(typing.get_args(ann)[0]) is Literal:
        choices = typing.get_args(typing.get_args(ann)[0])
    if isinstance(default, BaseModel):  # a nested config as one picker (BackendSpec): no default value
        default = None
    spec = FieldSpec(
        name=name or path.replace(".", "_"), path=path, widget=widget,
        default=None if default is _MISSING else default, choices=tuple(choices), minimum=lo, maximum=hi,
        step=(0.01 if widget == "slider" and hi is not None and lo is not None and hi - lo <= 1 else None),
        help=info.description or "", required=default is _MISSING, optional=optional,
    )
    if optional and spec.default is None and widget in ("int", "float") and (lo or 0) > 0:
        # An empty Number widget shows 0, which a minimum of 1 would make the browser refuse: the form says
        # "0 = not set" instead (limit: 0 = all rows), and `coerce` turns that 0 back into None.
        spec = replace(spec, minimum=0.0, default=0, extra={"zero_is_none": True})
    extra = overrides.pop("extra", {})
    spec = replace(spec, **overrides)
    if extra:
        spec.extra.update(extra)
    return spec


def coerce(spec: FieldSpec, value: Any) -> Any:
    """A widget's value as the config expects it: numbers from Number widgets (floats, None when cleared), text
    stripped, an empty optional value as None, a checkbox group as a list."""
    if spec.widget in ("int", "float", "slider"):
        if value is None or (isinstance(value, str) and not value.strip()) or (
                isinstance(value, float) and math.isnan(value)):
            return None if spec.optional else spec.default
        if spec.extra.get("zero_is_none") and float(value) == 0:  # "0 = all rows" in a Number widget
            return None
        return int(round(float(value))) if spec.widget == "int" else float(value)
    if spec.widget == "bool":
        return bool(value)
    if spec.widget == "multi":
        return list(value or [])
    if isinstance(value, str):
        value = value.strip()
    if value in ("", None):
        return None if spec.optional else ("" if spec.widget in ("text", "code") else None)
    return value
