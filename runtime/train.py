"""train / train_sft: the stage entry of every training method. It reads the stage's resolved method from
plan.json and hands it to the recipe of its kind (runtime.recipes.RECIPES: lora and sft -> recipes/sft.py,
dpo -> recipes/dpo.py, grpo -> recipes/grpo.py)."""

from __future__ import annotations

from runtime.context import RunContext, StageFailed
from runtime.recipes import RECIPES
from schemas.plan import Plan, ResolvedMethod


def method_for(plan: Plan, stage: str) -> ResolvedMethod:
    """The hyperparameters this stage trains with: exactly the stage's resolved method in plan.json."""
    method = plan.stage(stage).method
    if method is None:
        raise StageFailed(
            f"plan {plan.id}: stage {stage!r} has no training method (chose {plan.decision.method!r}); "
            "re-plan if the plan was edited by hand"
        )
    return method


def run(ctx: RunContext) -> None:
    method = method_for(ctx.plan, ctx.stage.name)
    RECIPES[method.kind].run(ctx, method)
