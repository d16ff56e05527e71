"""One backend protocol for teachers, judges and students (see base.py); `make_backend(spec)` builds one.

Importing this package is cheap: implementations import torch / httpx only when a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config.base import BackendSpec
    from core.llm.base import Backend


def make_backend(spec: BackendSpec, **kwargs) -> Backend:
    """See core.llm.factory.make_backend."""
    from core.llm.factory import make_backend as _make

    return _make(spec, **kwargs)
