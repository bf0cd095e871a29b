"""The recoveries a plan can get after its blocks are removed, and how a recovered plan is named.

A recovered plan is named `<plan>+<recovery>` (`lorp-p27+linear`); `none` (the plan as pruned) is always kept.
"""

from collections.abc import Mapping, Sequence

from lorp.errors import LorpError

RECOVERIES: Mapping[str, str] = {
    "linear": "linear replacement of each removed run, least squares on calibration activations, folded into "
              "the weights (training-free)",
    "lora": "LoRA adapters trained on calibration-corpus text, then merged",
}
NAMES = ("none", *RECOVERIES)
# Besides method names, what recovery.lora_methods may name: the plan of lowest calibration PPL among the other
# methods at the budget (marginal_cost's record, no evaluation data), or every method.
LORA_CHOICES = ("best", "all")
SEPARATOR = "+"


class RecoveryNameError(LorpError, ValueError):
    pass


def recovered_name(plan: str, recovery: str) -> str:
    if recovery not in RECOVERIES:
        raise RecoveryNameError(f"unknown recovery {recovery!r}: choose from {', '.join(RECOVERIES)}")
    return f"{plan}{SEPARATOR}{recovery}"


def split_recovered(name: str) -> tuple[str, str]:
    """(plan, recovery) of a plan name; recovery 'none' for a plan as pruned."""
    plan, sep, recovery = name.partition(SEPARATOR)
    return (plan, recovery) if sep else (name, "none")


def lora_plans(plans: Sequence[dict], calibration_ppl: Mapping[str, float], methods: Sequence[str],
               budgets: str) -> list[str]:
    """The plans LoRA heals: those of `methods` at the largest budget (or every budget); `best` is the plan of lowest
    calibration PPL among the methods not named, `all` every plan."""
    counts = sorted({p["budget"] for p in plans})
    chosen = []
    for count in counts[-1:] if budgets == "largest" else counts:
        at = [p for p in plans if p["budget"] == count]
        for name in methods:
            if name == "all":
                chosen += [p["name"] for p in at]
            elif name == "best":
                if others := [p for p in at if p["method"] not in methods]:
                    chosen.append(min(others, key=lambda p: calibration_ppl[p["name"]])["name"])
            else:
                chosen += [p["name"] for p in at if p["method"] == name]
    return list(dict.fromkeys(chosen))
