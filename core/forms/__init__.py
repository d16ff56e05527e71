"""Forms: one per job kind, built from the job's pydantic config (the form pattern, see README "Adding a form").

- `fields.py`: `field(Config, "path")` reads a field's widget kind, default, choices, bounds and help from the config.
- `form.py`: `JobForm` — widget values in, a validated, workspace-confined job config out (errors name the field),
  and back (a YAML or a past job's config into the form's values); the YAML / CLI preview.
- `pickers.py`: the model / dataset / cache / endpoint choices every tab offers, and picker value → `BackendSpec`.

Each room keeps its own form in `core/<room>/form.py`; the studio renders any of them with `studio.forms`.
"""
