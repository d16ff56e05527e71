"""Configs of the preference-data jobs (REFERENCE §5): DPO pairs, and CogPO's Critique–Rethink–Verify pairs.

Kept apart from `data_jobs` because these jobs chain several model roles (student, ranker, critic, rethinker,
verifier) through one resumable ledger; their rows are what `train_dpo` reads (instruction/chosen/rejected + id).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config.base import BackendSpec, JobBase, Sampling
from core.config.data_jobs import JudgeMetric

PairMode = Literal["student", "best_of_n"]
RankBy = Literal["none", "verifier", "judge", "scorer"]


class PairsJob(JobBase):
    """Build (prompt, chosen, rejected) rows for DPO, resumable by row id.

    - `student`: chosen = the dataset's teacher answer, rejected = the student's answer (generated in batches through
      any backend). With `rank_by` other than none both answers are scored and the pair is kept only when the teacher's
      scores higher (a tie or a better student answer is rejected with the scores).
    - `best_of_n`: the teacher answers each prompt `num_samples` times; chosen = the best, rejected = the worst by
      `rank_by`: verifier (math-verify against `answer_field`), judge (a 0–9 rubric through any backend), or scorer
      (EasyDistill 2.0: correct × 1/(1 + α·length in characters)).
    Ties (best score = worst score, or a margin ≤ `min_margin`) and identical texts are dropped into the rejects file
    with the reason; every sample and judge reply is recorded as it arrives, so a killed job re-asks for nothing.
    """

    ENTRY = "core.pairs.job:run"
    kind: Literal["pairs"] = "pairs"
    input: str = Field(description="prompts with the teacher's answer (student mode) or prompts alone (best_of_n): "
                       "workspace dataset name or file")
    output: str = Field("", description="output dataset name, or a file path ending in .jsonl or .json; default: "
                        "<input>-pairs")
    mode: PairMode = Field("student", description="student: teacher answer vs student answer; best_of_n: best vs "
                           "worst of N teacher samples")
    student: BackendSpec | None = Field(None, description="student mode: the model whose answers become the rejected "
                                        "side")
    teacher: BackendSpec | None = Field(None, description="best_of_n: the model sampled N times per prompt")
    num_samples: int = Field(4, ge=2, le=64, description="best_of_n: samples per prompt")
    rank_by: RankBy = Field("none", description="how answers are ranked: none (student mode: the teacher's answer is "
                            "chosen as it is), verifier (math-verify against answer_field), judge (an LLM rubric), "
                            "scorer (correct × 1/(1 + α·length))")
    answer_field: str | None = Field("answer", description="reference answer column (verifier, scorer)")
    judge: BackendSpec | None = Field(None, description="rank_by judge: the grading model; scorer: decides "
                                      "correctness where a row has no reference answer")
    judge_metric: JudgeMetric = Field("helpfulness", description="rank_by judge: the rubric each answer is scored by")
    judge_template: str | None = Field(None, description="rank_by judge: rubric template (workspace name or file with "
                                       "{instruction} and {response}); default: assets/templates/judge_<metric>.txt")
    length_alpha: float = Field(0.001, ge=0, description="scorer: α in correct × 1/(1 + α·length in characters)")
    min_margin: float = Field(0.0, ge=0, description="drop pairs whose chosen score exceeds the rejected one by no "
                              "more than this (0: only exact ties)")
    sampling: Sampling = Field(default_factory=Sampling, description="decoding of the student / teacher samples")
    judge_sampling: Sampling = Field(
        default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=1024),
        description="judge decoding; temperature 0 so a rerun gives the same ranking",
    )
    system_prompt: str = Field("", description="system turn for rows without one (empty: none)")
    limit: int | None = Field(None, ge=1, description="only the first N rows")
    retry_rejects: bool = Field(False, description="run the rows of the rejects file again (old file kept as .bak)")

    @model_validator(mode="after")
    def _roles(self) -> PairsJob:
        if self.mode == "student" and self.student is None:
            raise ValueError("mode 'student' needs a student model (its answers are the rejected side)")
        if self.mode == "best_of_n":
            if self.teacher is None:
                raise ValueError("mode 'best_of_n' needs a teacher to sample from")
            if self.rank_by == "none":
                raise ValueError("mode 'best_of_n' needs rank_by: verifier, judge or scorer")
        if self.rank_by == "judge" and self.judge is None:
            raise ValueError("rank_by 'judge' needs a judge model")
        if self.rank_by == "verifier" and not self.answer_field:
            raise ValueError("rank_by 'verifier' needs answer_field (the reference answer column)")
        if self.rank_by == "scorer" and not self.answer_field and self.judge is None:
            raise ValueError("rank_by 'scorer' needs answer_field or a judge to decide correctness")
        return self


Difficulty = Literal["easy", "medium", "hard"]


class CrvJob(JobBase):
    """CogPO's Critique–Rethink–Verify (REFERENCE §5) over a CoT dataset, resumable by row id.

    A critic labels each chain of thought easy (too terse for the target student) / medium / hard (too convoluted); a
    rethinker rewrites easy ones longer (short2long) and hard ones shorter (long2short) with the synthesis operators'
    templates; a verifier checks the rewrite reaches the same answer (math-verify against `answer_field`, else the
    original's final answer; or a judge). A verified rewrite becomes a typed pair — chosen = rewrite, rejected =
    original, `pair_type` short2long / long2short; with `corrupted_pairs` a rewrite that lost the answer becomes a
    `corrupted` pair (chosen = original, rejected = rewrite); each pair also carries its `difficulty` label. The β per
    pair type is the trainer's (`train_dpo`'s `pair_type_beta`, looked up in `pair_type` or, with `pair_type_column:
    difficulty`, by label). Medium rows and failed rows go to the rejects file with the reason; labels, rewrites and
    verdicts are recorded per row in `<output>.crv.ndjson`.
    """

    ENTRY = "core.pairs.crv:run"
    kind: Literal["crv"] = "crv"
    input: str = Field(description="CoT dataset: instruction + output (or thought/solution), ideally a reference "
                       "answer column")
    output: str = Field("", description="output dataset name, or a file path ending in .jsonl or .json; default: "
                        "<input>-crv")
    critic: BackendSpec = Field(description="labels each chain of thought easy / medium / hard for the student")
    rethinker: BackendSpec | None = Field(None, description="rewrites easy and hard chains; default: the critic")
    verifier: Literal["math_verify", "judge"] = Field(
        "math_verify", description="math_verify: the rewrite's final answer must equal the reference (or the "
        "original's); judge: a model says whether the rewrite reaches the same answer")
    verify_judge: BackendSpec | None = Field(None, description="verifier judge: the model asked; default: the critic")
    student_size: str = Field("1.5B", description="the target student, as the critic reads it (e.g. 1.5B, 7B)")
    answer_field: str | None = Field("answer", description="reference answer column (math_verify)")
    critique_template: str | None = Field(None, description="default: assets/templates/crv_critique.txt "
                                          "({instruction}, {cot}, {student})")
    short2long_template: str | None = Field(None, description="default: the short2long operator's template")
    long2short_template: str | None = Field(None, description="default: the long2short operator's template")
    verify_template: str | None = Field(None, description="default: assets/templates/crv_verify.txt")
    critic_sampling: Sampling = Field(
        default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=1024),
        description="critic and verifier decoding (temperature 0: a rerun labels alike)")
    rethink_sampling: Sampling = Field(default_factory=lambda: Sampling(max_new_tokens=2048),
                                       description="rethinker decoding")
    corrupted_pairs: bool = Field(False, description="a rewrite that fails verification while the original reaches "
                                  "the reference becomes a 'corrupted' pair (chosen = original)")
    system_prompt: str = "You are a helpful assistant."
    parse_retries: int = Field(1, ge=0, le=10, description="ask again (new seed) when a reply cannot be parsed")
    limit: int | None = Field(None, ge=1, description="only the first N rows")
    retry_rejects: bool = Field(False, description="run the rows of the rejects file again (old file kept as .bak)")
