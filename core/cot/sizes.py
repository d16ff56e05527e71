"""Curation settings per student size: which chains of thought a student of that size learns best from.

Only the 1.5B entry is a published recipe: DistilQwen-ThoughtX trained its 1.5B student on OmniThought traces that
were correct, with reasoning verbosity 3–5 and cognitive difficulty 4 (REFERENCE §3; OmniThought, Cai et al. 2025,
arXiv:2505.10937). The others follow the same paper's finding that a model's best RV/CD rises with its size (smaller
students want shorter, easier chains; larger ones profit from longer, harder ones) — starting points to tune with
the live counts, not measured optima. Each value is a set of CurateSpec fields; the tab fills its form from them.
"""

from __future__ import annotations

from typing import Any

STUDENT_SIZES: dict[str, dict[str, Any]] = {
    # extrapolated down from the 1.5B recipe: concise chains of easy-to-medium problems
    "0.5B": {"min_correctness": 1, "rv_min": 2, "rv_max": 4, "cd_min": 2, "cd_max": 4},
    # DistilQwen-ThoughtX 1.5B (published): correct, RV 3–5, CD 4
    "1.5B": {"min_correctness": 1, "rv_min": 3, "rv_max": 5, "cd_min": 4, "cd_max": 4},
    # extrapolated up: moderately detailed chains of undergraduate-level problems
    "7B": {"min_correctness": 1, "rv_min": 4, "rv_max": 7, "cd_min": 4, "cd_max": 7},
    # extrapolated up: extensive chains, hard problems included
    "32B": {"min_correctness": 1, "rv_min": 5, "rv_max": 9, "cd_min": 5, "cd_max": 9},
}
PUBLISHED = ("1.5B",)  # sizes whose settings come from a published recipe (the rest are extrapolations)
