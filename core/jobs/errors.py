"""The refusals a job action ends in. Both are UserErrors: the CLI and the studio show their message as it is."""

from __future__ import annotations

from core.errors import UserError


class JobNotFound(UserError, LookupError):
    """No job with that id (or unique id prefix) in this workspace."""


class JobStateError(UserError, ValueError):
    """The action does not apply to the job in its current state (message says why and what to do)."""
