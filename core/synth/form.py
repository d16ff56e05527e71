"""The synthesis form: operator, input and output, teacher, prompt template, sampling and the operator's own options,
as a SynthJob — and a past SynthJob back as form values.

The teacher is a local model (transformers / vLLM, loaded by the job), a registered endpoint (`endpoint:<name>`), or
an endpoint typed in (base URL, served model, API-key variable); `to_data` builds the BackendSpec. Which fields an
operator or a teacher kind uses is a form-level mapping (`OPERATOR_FIELDS`, `BACKEND_FIELDS`): the tab shows and hides
widgets from `shown`, and `to_data` reads only the fields in use, so a hidden field never leaks into the config.

The prompt template is a picker (empty = the operator's default) plus its editable text: edited text is saved as a
workspace template when the job is submitted (`submit`), never by a preview. Classify's categories and target shares
come from a two-column table (`shares`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.config.data_jobs import SynthJob
from core.data.errors import DataError
from core.endpoints import ENDPOINT_PREFIX, UnknownEndpoint, choice_for, spec_for
from core.forms.fields import FieldSpec, coerce, field
from core.forms.form import FormError, JobForm
from core.pickers import endpoint_choices
from core.synth.templates import (
    TemplateError,
    check_template,
    default_template,
    list_templates,
    load_template,
    save_template,
    template_ref,
)
from core.workspace import Workspace

T = SynthJob

# Fields only some operators / teacher kinds use; every other field is used always.
OPERATOR_FIELDS: dict[str, tuple[str, ...]] = {
    "expand": ("n_ctx", "n_out"),
    "classify": ("shares", "balance_after", "balance_total", "upsample"),
}
BACKEND_FIELDS: dict[str, tuple[str, ...]] = {
    "transformers": ("model", "batch_size"),
    "vllm": ("model",),
    "openai": ("endpoint", "base_url", "served_model", "api_key_env", "concurrency", "replicas"),
}
TYPED_ENDPOINT = ("base_url", "served_model", "api_key_env")  # not used while a registered endpoint is picked
SHARES = "shares"  # the category/share table: a form value the tab renders as a table (no FieldSpec widget fits)


def _op_scoped() -> set[str]:
    return {n for names in OPERATOR_FIELDS.values() for n in names}


def _teacher_scoped() -> set[str]:
    return {n for names in BACKEND_FIELDS.values() for n in names}


def default_shares() -> list[list[Any]]:
    """The share table's starting rows: DistilQwen's categories and shares."""
    from core.data.ops import DEFAULT_SHARES

    return [[k, v] for k, v in DEFAULT_SHARES.items()]


def parse_shares(table: Any) -> dict[str, float]:
    """Category -> share from the editable table (a pandas DataFrame, or rows as lists); FormError names `shares`."""
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    out: dict[str, float] = {}
    for r in rows:
        if len(r) < 2 or r[0] is None or str(r[0]).strip() in ("", "nan"):
            continue
        try:
            share = float(r[1] if r[1] not in (None, "") else 0)
        except (TypeError, ValueError):
            raise FormError(f"the share of '{r[0]}' is not a number: {r[1]!r}", SHARES, code="share_not_number",
                            category=r[0], value=r[1]) from None
        share = 0.0 if math.isnan(share) else share  # an emptied cell of a number column
        if share < 0:
            raise FormError(f"the share of '{r[0]}' must be a number ≥ 0", SHARES, code="share_negative", category=r[0])
        out[str(r[0]).strip()] = share
    if not out:
        raise FormError("list at least one category", SHARES, code="categories_none")
    return out


class SynthForm(JobForm):
    config = SynthJob
    fields = (
        field(T, "input", widget="dataset"),
        field(T, "operator"),
        field(T, "output"),
        FieldSpec(name="backend", path="", widget="choice", choices=tuple(BACKEND_FIELDS), default="transformers",
                  help="where the teacher runs: loaded by the job (transformers or vLLM), or behind an "
                  "OpenAI-compatible API", group="teacher"),
        field(T, "teacher", name="model", widget="model", required=False, group="teacher",
              help="a workspace model (or a folder inside the workspace)"),
        field(T, "teacher.batch_size", name="batch_size", group="teacher"),
        FieldSpec(name="endpoint", path="", widget="text", optional=True, group="teacher",
                  help="a registered endpoint (Models tab); empty = type one below",
                  extra={"choices_of": endpoint_choices}),
        field(T, "teacher.endpoint.base_url", name="base_url", required=False, group="teacher"),
        field(T, "teacher.endpoint.model", name="served_model", group="teacher"),
        field(T, "teacher.endpoint.api_key_env", name="api_key_env", group="teacher"),
        field(T, "teacher.endpoint.concurrency", name="concurrency", group="teacher"),
        FieldSpec(name="replicas", path="", widget="text", default="", group="teacher",
                  help="more servers of the same model, one per line (a base URL or endpoint:<name>); rows are "
                  "shared out by id and a server that goes down hands its rows to the others",
                  extra={"gradio": {"lines": 2}}),
        field(T, "template", widget="text", group="template", extra={"choices_of": list_templates},
              help="a saved workspace template; empty = the operator's default"),
        FieldSpec(name="template_text", path="", widget="code", group="template",
                  default=default_template("label"), extra={"gradio": {"lines": 10}}),
        field(T, "sampling.temperature", name="temperature", widget="slider", step=0.05, group="sampling"),
        field(T, "sampling.top_p", name="top_p", group="sampling"),
        field(T, "sampling.max_new_tokens", name="max_new_tokens", group="sampling"),
        field(T, "sampling.seed", name="sampling_seed", group="sampling"),
        field(T, "system_prompt", group="options"),
        field(T, "num_in_context_samples", name="n_ctx", group="options"),
        field(T, "num_output_samples", name="n_out", group="options"),
        field(T, "limit", group="options", default=0, minimum=0, extra={"zero_is_none": True}),
        field(T, "seed", group="options"),
        field(T, "parse_retries", group="options"),
        FieldSpec(name="balance_after", path="", widget="bool", default=True, group="balance",
                  help="classify: write a resampled <output>-balanced dataset toward the table's shares"),
        field(T, "balance_total", group="balance", default=0, minimum=0, extra={"zero_is_none": True}),
        field(T, "balance_upsample", name="upsample", group="balance"),
        field(T, "name"),
    )

    # ------------------------------------------------------------------------------------------ which fields show
    def uses(self, name: str, values: dict[str, Any]) -> bool:
        """Whether the operator and teacher kind in `values` use field `name` (hidden and ignored otherwise)."""
        if name in _op_scoped():
            return name in OPERATOR_FIELDS.get(values.get("operator") or "label", ())
        if name in _teacher_scoped():
            backend = values.get("backend") or "transformers"
            if name in TYPED_ENDPOINT and (values.get("endpoint") or "").strip():
                return False
            return name in BACKEND_FIELDS.get(backend, ())
        return True

    def shown(self, values: dict[str, Any]) -> dict[str, bool]:
        """{field name: visible} for every field and the shares table."""
        return {n: self.uses(n, values) for n in [*(f.name for f in self.fields), SHARES]}

    @staticmethod
    def operator_defaults(operator: str) -> dict[str, Any]:
        """What switching the operator resets: its default template (and the template picker to 'default')."""
        return {"template": "", "template_text": default_template(operator)}

    # ------------------------------------------------------------------------------------------ values → config
    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        if not (values.get("input") or "").strip():
            raise FormError("choose an input dataset", "input", code="required")
        op = values.get("operator") or "label"
        plain = {k: v for k, v in values.items() if self.uses(k, values) and k not in _teacher_scoped()
                 and k != "template"}
        data = super().to_data(ws, plain)
        data["teacher"] = self._teacher(ws, values)
        if self.uses("replicas", values):
            data["backends"] = self._replicas(ws, values, data["teacher"])
        data["template"], _ = self._template(ws, values)
        if values.get("retry_rejects"):
            data["retry_rejects"] = True
        if op == "classify":
            table = parse_shares(values[SHARES]) if values.get(SHARES) is not None else dict(default_shares())
            if coerce(self.spec("balance_after"), values.get("balance_after", True)):
                data["target_shares"] = table  # the categories are the table's
            else:
                data["categories"] = list(table)
                data.pop("balance_total", None)
                data.pop("balance_upsample", None)
        output = data.get("output") or ""
        if output and "/" not in output and "\\" not in output:
            from core.data.store import check_name

            try:
                check_name(output.removesuffix(".json"))
            except DataError as e:
                raise FormError(str(e), "output", code=e.code, **e.params) from None
        if not data.get("name"):
            data["name"] = f"synth {op} {Path(values['input'].strip()).name}"
        return data

    def spec(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    def value(self, values: dict[str, Any], name: str) -> Any:
        """A form-only field's value as the config would take it (numbers from Number widgets, empty text as None)."""
        return coerce(self.spec(name), values.get(name))

    def _teacher(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        """The teacher's BackendSpec (as a dict) from the backend choice and its fields."""
        backend = values.get("backend") or "transformers"
        if backend == "openai":
            endpoint = self.value(values, "endpoint")
            concurrency = self.value(values, "concurrency")
            if endpoint:
                try:
                    spec = spec_for(endpoint if endpoint.startswith(ENDPOINT_PREFIX) else ENDPOINT_PREFIX + endpoint,
                                    ws)
                except UnknownEndpoint as e:
                    raise FormError(str(e), "endpoint", code=e.code, **e.params) from None
                data = spec.model_dump(exclude_defaults=True)  # type: ignore[union-attr]
                data["endpoint"]["concurrency"] = concurrency
                return data
            url = self.value(values, "base_url")
            if not url:
                raise FormError("give the endpoint's base URL (or pick a registered endpoint)", "base_url",
                                code="endpoint_url_missing")
            served = self.value(values, "served_model")
            return {"type": "openai", "model": served or "", "endpoint": {
                "base_url": url, "model": served, "api_key_env": self.value(values, "api_key_env"),
                "concurrency": concurrency}}
        model = self.value(values, "model")
        if not model:
            raise FormError("choose the teacher model", "model", code="required")
        spec = spec_for(model, ws, backend)
        assert spec is not None
        data = spec.model_dump(exclude_defaults=True)
        if spec.type == "transformers":
            data["batch_size"] = self.value(values, "batch_size")
        return data

    def _replicas(self, ws: Workspace, values: dict[str, Any], teacher: dict[str, Any]) -> list[dict[str, Any]]:
        """The `backends` list from the replicas box: each line a base URL (served model, key variable and
        concurrency as the teacher's) or a registered endpoint."""
        out: list[dict[str, Any]] = []
        first = teacher.get("endpoint") or {}
        for line in str(values.get("replicas") or "").splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith(("http://", "https://")):
                out.append({"type": "openai", "model": teacher.get("model", ""), "endpoint": {
                    "base_url": line, **{k: first[k] for k in ("model", "api_key_env", "concurrency") if k in first}}})
                continue
            try:
                spec = spec_for(line if line.startswith(ENDPOINT_PREFIX) else ENDPOINT_PREFIX + line, ws)
            except UnknownEndpoint as e:
                raise FormError(f"{e} (a replica is a base URL starting with http:// or a registered endpoint)",
                                "replicas") from None
            data = spec.model_dump(exclude_defaults=True)  # type: ignore[union-attr]
            if "concurrency" in first:
                data["endpoint"]["concurrency"] = first["concurrency"]
            out.append(data)
        return out

    def _save_name(self, values: dict[str, Any]) -> str:
        """The stem an edited template is saved under: the output's name (default <input>-<operator>)."""
        out = (values.get("output") or "").strip()
        stem = Path(out).name if out else f"{Path((values.get('input') or '').strip()).name}-" \
                                          f"{values.get('operator') or 'label'}"
        for ext in (".jsonl", ".json", ".csv", ".tsv", ".parquet"):
            stem = stem.removesuffix(ext)
        return stem

    @staticmethod
    def _replica_line(spec: Any, ws: Workspace) -> str:
        choice = choice_for(spec, ws)
        return choice if choice.startswith(ENDPOINT_PREFIX) else spec.endpoint.base_url

    def _template(self, ws: Workspace, values: dict[str, Any]) -> tuple[str | None, str | None]:
        """(the config's template reference, the name the edited text is saved under at submit, or None)."""
        text = values.get("template_text")
        return template_ref(ws, values.get("operator") or "label", self.value(values, "template"),
                            None if text is None else str(text), self._save_name(values))

    # ------------------------------------------------------------------------------------------ actions
    def prepare(self, ws: Workspace, values: dict[str, Any]) -> tuple[SynthJob, str, str | None]:
        """(the job, the template text it will use — checked, the name to save that text under first or None)."""
        job: SynthJob = self.build_job(ws, values)  # type: ignore[assignment]
        _, save_as = self._template(ws, values)
        text = values.get("template_text")
        if text is None or not save_as:
            text = load_template(job.operator, job.template, ws, job.prompt)
        check_template(job.operator, str(text).rstrip("\n"))
        return job, str(text).rstrip("\n"), save_as

    def trial(self, ws: Workspace, values: dict[str, Any], n: int) -> Any:
        """"Try on N rows" (core.synth.trial: a local teacher runs in a child process); nothing is saved."""
        from core.synth.trial import try_operator

        job, text, save_as = self.prepare(ws, values)
        if save_as:  # the edited template is not saved yet: the trial gets its text directly
            job = job.model_copy(update={"template": None})
        return try_operator(ws, job, max(1, int(n or 5)), template_text=text)

    def submit(self, ws: Workspace, jobs: Any, values: dict[str, Any], retry: bool = False) -> tuple[str, SynthJob]:
        """Submit the job (saving an edited template first); (job id, config)."""
        job, text, save_as = self.prepare(ws, {**values, "retry_rejects": retry})
        if save_as:
            save_template(ws, save_as, job.operator, text)
        return jobs.submit(job), job

    # ------------------------------------------------------------------------------------------ config → values
    def values_of(self, job: Any, ws: Workspace) -> dict[str, Any]:
        values = super().values_of(job, ws)
        teacher = job.teacher
        values["endpoint"] = ""
        if teacher.type == "openai":
            choice = choice_for(teacher, ws)
            values.update(backend="openai", model=None,
                          endpoint=choice if choice.startswith(ENDPOINT_PREFIX) else "")
        else:
            values.update(backend=teacher.type, model=teacher.model)
        values["replicas"] = "\n".join(self._replica_line(b, ws) for b in job.backends)
        values["template"] = job.template or ""
        try:
            values["template_text"] = load_template(job.operator, job.template, ws, job.prompt)
        except (TemplateError, OSError):
            values["template_text"] = default_template(job.operator)
        values["limit"] = job.limit or 0
        values["balance_total"] = job.balance_total or 0
        values["balance_after"] = job.target_shares is not None if job.operator == "classify" else True
        if job.target_shares:
            values[SHARES] = [[k, v] for k, v in job.target_shares.items()]
        elif job.categories:
            shares = dict(default_shares())
            values[SHARES] = [[c, shares.get(c, 0.0)] for c in job.categories]
        return values


FORM = SynthForm()


def build_job(ws: Workspace, values: dict[str, Any], confine: bool = True) -> SynthJob:
    """The form's values as a SynthJob (see `JobForm.build_job`)."""
    return FORM.build_job(ws, values, confine)  # type: ignore[return-value]


def balance_dataset(ws: Workspace, values: dict[str, Any]) -> tuple[str, int, list[tuple[str, int, int, int]]]:
    """"Balance now": resample the form's input (already classified) toward its share table into `<input>-balanced`,
    with the form's balance_total, seed and upsample. Returns (new dataset, rows, [(category, before, target, after)]).
    """
    from core.data.ops import balance
    from core.data.store import load_rows, save_rows

    dataset = (values.get("input") or "").strip()
    if not dataset:
        raise FormError("choose an input dataset", "input", code="required")
    shares = parse_shares(values.get(SHARES))
    if not any(v > 0 for v in shares.values()):
        raise FormError("give at least one category a share above 0", SHARES, code="categories_zero")
    rows, _ = load_rows(ws, dataset)
    if not any("category" in r for r in rows):
        raise DataError(f"'{dataset}' has no `category` column: run the classify operator on it first")
    total, seed, upsample = (FORM.value(values, n) for n in ("balance_total", "seed", "upsample"))
    out, rep = balance(rows, shares, total, seed, upsample)
    name = f"{Path(dataset).name.removesuffix('.jsonl')}-balanced"
    save_rows(ws, name, out, created_by="balance", source=dataset)
    table_rows = [(c, rep.before.get(c, 0), rep.target.get(c, 0), rep.after.get(c, 0))
                  for c in sorted(set(rep.target) | set(rep.before))]
    return name, len(out), table_rows


def output_label(job: SynthJob) -> str:
    """The dataset (or file) the job writes, as the submitted message names it."""
    from core.synth.job import default_output_name

    return job.output or default_output_name(job)


def progress_counts(metrics: list[dict]) -> dict[str, Any]:
    """What a synthesis job reported last (rows done of total, parsed, rejected, rows/s, tokens): the tab's second
    status line, which stays after the job ended (the one-line status drops its counts then)."""
    last = next((m for m in reversed(metrics) if "step" in m), {})
    return {"done": last.get("step", 0), "total": last.get("total", "?"), "ok": last.get("ok", 0),
            "rejected": last.get("rejected", 0), "rps": last.get("rows_per_s", 0), "tokens": last.get("tokens", 0)}
