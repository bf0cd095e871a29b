"""The machine a run needs, checked before DVC touches an output: each model's source, device and dtype, the disk
for the checkpoints not in DVC's cache yet, the memory of the largest stage; and a one-screen summary with the time
the last run's records predict (the estimates themselves: lorp.model.resources and lorp.model.disk)."""

from pathlib import Path

from lorp.model import resources
from lorp.model.disk import check_disk, disk_need
from lorp.params.config import Params
from lorp.params.rerun import stages_to_rerun
from lorp.recover.recoveries import lora_plans, recovered_name
from lorp.select.budgets import budget_label, resolve_budget
from lorp.select.methods import plan_name, split_plan_name


def recovered_plans(params: Params, plans: dict[str, int], marginal: dict | None = None) -> dict[str, int]:
    """{recovered name: blocks kept} the recover stage will write: every plan's linear recovery, and the plans
    recovery.lora_methods names (lorp.recover.recoveries.lora_plans). `best` is ranked by marginal_cost's record
    (`marginal`) when it covers every plan, as the recover stage ranks it, so checkpoints already written are
    recognised; before that record exists it stands for any one other plan, which is all a size estimate needs."""
    rec = params.recovery
    ranked = {name: row["ppl"][-1] for name, row in (marginal or {}).get("plans", {}).items()}
    out = {recovered_name(name, "linear"): kept for name, kept in plans.items()} if "linear" in rec.methods else {}
    if "lora" in rec.methods:
        records = [{"name": name, "method": split_plan_name(name)[0], "budget": -kept} for name, kept in plans.items()]
        calibration_ppl = ranked if set(plans) <= set(ranked) else dict.fromkeys(plans, 0.0)
        healed = lora_plans(records, calibration_ppl, rec.lora_methods, rec.lora_budgets)
        out |= {recovered_name(name, "lora"): plans[name] for name in healed}
    return out


def machine_check(params: Params, root: Path) -> tuple[str, list[resources.ResourceError]]:
    """(the summary, the disk and memory refusals); a bad source, device or dtype is refused at once."""
    targets = {key: (resources.check_source(key, model.source), resources.check_device(key, model.device, model.dtype))
               for key, model in params.models.items()}
    # the largest batch of windows any stage holds with its recorded block inputs
    tokens = max(params.evaluate.batch_size * params.evaluate.seqlen,
                 params.similarity.batch_size * params.calibration.seqlen,
                 params.importance.batch_size * params.calibration.seqlen)
    lines, disk, refusals = ["preflight (estimates; lorp.model.resources):"], {}, []
    rerun = stages_to_rerun(root, [f"{stage}@{key}" for stage in ("fetch_model", "prune", "recover")
                                   for key in params.models])
    for key, model in params.models.items():
        kind, target = targets[key]
        shape = resources.model_shape(root, key, model.source, kind)
        plans = {plan_name(method, budget_label(value)): shape.num_blocks - resolve_budget(value, shape.num_blocks)
                 if shape else 0 for method in params.allocate.methods for value in params.budgets(key)}
        marginal = resources.read_record(root / dict(resources.TIMED)["marginal_cost"].format(key=key))
        disk[key], how = disk_need(root, key, model.source, model.dtype, shape, plans,
                                   recovered_plans(params, plans, marginal), rerun)
        try:
            memory = resources.check_memory(key, *resources.memory_need(root, key, model.dtype, target, shape,
                                                                         tokens), target)
        except resources.ResourceError as err:
            memory = "memory: REFUSED (below)"
            refusals.append(err)
        auto = f" (device auto -> {target})" if model.device == "auto" else ""
        need = resources.gib(disk[key]) if disk[key] is not None else "unknown"
        lines += [f"  {key}: {model.source} ({kind}), {model.dtype} on {target}{auto}",
                  f"    disk: ~{need} to write: {how}", f"    {memory}", f"    {resources.time_line(root, key)}"]
    try:
        lines.append("  " + check_disk(root, disk))
    except resources.ResourceError as err:
        lines.append("  disk: REFUSED (below)")
        refusals.append(err)
    return "\n".join(lines), refusals
