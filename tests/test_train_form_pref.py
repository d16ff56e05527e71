"""The training form's preference and RL methods (core.train.form): DPO / CogPO, reward model, GRPO / RLOO build their
jobs from widget values (text boxes for β per pair type and reward weights), errors name the field, jobs load back."""

from __future__ import annotations

import pytest

from core.config.train import DpoJob, GrpoJob, RewardJob
from core.forms.form import FormError
from core.train.form import FORM, method_defaults
from tests.test_train_form import form


def test_dpo_cogpo_reward_and_grpo_build_their_jobs(workspace):
    dpo = FORM.build_job(workspace, form(method="dpo", teacher="", dpo_beta=0.2, dpo_loss_type="ipo",
                                         pair_type_beta="easy=0.3, hard=0.05", beta_column="beta",
                                         rejected_from="student-answers", reference="tiny-teacher"))
    assert isinstance(dpo, DpoJob) and dpo.beta == 0.2 and dpo.loss_type == "ipo"
    assert dpo.pair_type_beta == {"easy": 0.3, "hard": 0.05} and dpo.beta_column == "beta" and dpo.per_row_beta
    assert dpo.rejected_from == "student-answers" and dpo.reference == "tiny-teacher"
    plain = FORM.build_job(workspace, form(method="dpo"))
    assert plain.pair_type_beta == {} and plain.beta_column is None and not plain.per_row_beta
    assert plain.reference is None and plain.rejected_from is None

    rm = FORM.build_job(workspace, form(method="reward", center_rewards_coefficient=0.01))
    assert isinstance(rm, RewardJob) and rm.center_rewards_coefficient == 0.01

    rl = FORM.build_job(workspace, form(method="grpo", rl_trainer="rloo", reward_funcs=["length", "judge"],
                                        reward_weights="1, 0.5", judge="tiny-teacher", rl_beta=0.04,
                                        num_generations=8, gradient_accumulation_steps=8))
    assert isinstance(rl, GrpoJob) and rl.trainer == "rloo" and rl.reward_funcs == ["length", "judge"]
    assert rl.reward_weights == [1.0, 0.5] and rl.judge.model == "tiny-teacher" and rl.beta == 0.04


def test_preference_and_rl_errors_name_the_field(workspace):
    with pytest.raises(FormError, match="pair_type_beta"):
        FORM.build_job(workspace, form(method="dpo", pair_type_beta="easy"))
    with pytest.raises(FormError, match="dpo_beta"):
        FORM.build_job(workspace, form(method="dpo", dpo_beta=0))
    with pytest.raises(FormError, match="reward_weights"):
        FORM.build_job(workspace, form(method="grpo", reward_weights="1"))
    with pytest.raises(FormError, match="num_generations"):
        FORM.build_job(workspace, form(method="grpo", num_generations=3))
    with pytest.raises(FormError, match="judge"):
        FORM.build_job(workspace, form(method="grpo", reward_funcs=["judge"]))


@pytest.mark.parametrize("values", [
    {"method": "dpo", "pair_type_beta": "easy=0.3, hard=0.05", "dpo_loss_type": "hinge"},
    {"method": "reward", "rejected_from": "student-answers"},
    {"method": "grpo", "reward_funcs": ["length", "format"], "reward_weights": "2, 1", "rl_trainer": "rloo"},
])
def test_preference_and_rl_jobs_round_trip(workspace, values):
    job = FORM.build_job(workspace, form(**values))
    back = FORM.values_of(job, workspace)
    assert FORM.accepts(job) and back["method"] == values["method"]
    assert FORM.build_job(workspace, back) == job


def test_method_switch_applies_each_configs_schedule():
    assert method_defaults("dpo")["learning_rate"] == DpoJob.model_fields["learning_rate"].default
    assert method_defaults("grpo")["learning_rate"] == GrpoJob.model_fields["learning_rate"].default
    assert method_defaults("reward")["num_train_epochs"] == 1.0


def test_metrics_figure_shows_dpo_margins_and_grpo_rewards_per_function():
    from core.jobs.plots import metrics_figure

    dpo = [{"step": s, "loss": 0.7 - s * 0.01, "rewards/chosen": 0.1 * s, "rewards/rejected": -0.1 * s,
            "rewards/margins": 0.2 * s, "rewards/accuracies": 0.9, "logps/chosen": -20.0, "logits/chosen": 0.1,
            "entropy": 5.0, "lr": 1e-6, "grad_norm": 1.0} for s in range(1, 4)]
    dpo.append({"step": 3, "eval_loss": 0.6, "eval_rewards/margins": 0.5, "eval_rewards/chosen": 0.3})
    titles = [a.text for a in metrics_figure(dpo).layout.annotations]
    assert titles[:3] == ["loss", "rewards/margins", "rewards/chosen"]
    grpo = [{"step": s, "loss": 0.0, "reward": 0.2 * s, "rewards/length/mean": 0.1 * s, "rewards/format/mean": 0.1,
             "rewards/length/std": 0.1, "kl": 0.01 * s, "completions/mean_length": 12.0 - s, "lr": 1e-6}
            for s in range(1, 4)]
    fig = metrics_figure(grpo)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:4] == ["loss", "reward", "kl", "completions/mean_length"]
    assert {"reward", "rewards/length/mean", "rewards/format/mean"} <= {tr.name for tr in fig.data}
