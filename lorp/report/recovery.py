"""The report's recovery section: each plan before and after each recovery, what each recovery cost, and whether it
changes which selection rule is best (../shared/docs/recovery.md, "What to report")."""

import statistics

import pandas as pd

from lorp.recover.recoveries import recovered_name, split_recovered
from lorp.report import conclusions
from lorp.report.formats import MISSING, markdown_table, number, ppl, seconds
from lorp.select.methods import plan_name


def recoveries(metrics: dict) -> list[str]:
    """The recoveries a metrics file holds, in a stable order."""
    found = {r for rows in metrics.get("recovery", {}).values() for by in rows.values() for r in by}
    return sorted(found)


def table(metrics: dict, record: dict | None) -> pd.DataFrame:
    """One row per plan: PPL and accuracy as pruned and after each recovery, and each recovery's cost."""
    rows = {}
    recovered = metrics.get("recovery", {})
    costs = (record or {}).get("plans", {})
    for label in conclusions.labels(metrics):
        for method in conclusions.methods(metrics):
            if label not in metrics[method]:
                continue
            name, row = plan_name(method, label), metrics[method][label]
            out = {"blocks removed": str(row["blocks"]), "PPL ↓ as pruned": ppl(row["ppl"])}
            after = recovered.get(method, {}).get(label, {})
            for r in recoveries(metrics):
                out[f"PPL ↓ +{r}"] = ppl(after[r]["ppl"]) if r in after else MISSING
            out["acc ↑ as pruned"] = number(row["acc"], 3)
            for r in recoveries(metrics):
                out[f"acc ↑ +{r}"] = number(after[r]["acc"], 3) if r in after else MISSING
            for r in recoveries(metrics):
                cost = costs.get(f"{name}+{r}")
                out[f"{r} cost"] = f"{seconds(cost['seconds'])}, {cost['tokens']:,} tok" if cost else MISSING
            rows[name] = out
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "plan"
    return frame


def claims(metrics: dict, seed_summary: dict, record: dict | None, ppl_record: dict | None = None) -> list[str]:
    """Per budget and recovery: how many plans it improves and by what factor, the best method before and after,
    and whether the new leader's margin is beyond noise (conclusions.judge_margin): the paired evaluation-sample
    interval of the two recovered plans (ppl_record's per-window losses) and the calibration-seed spread of their
    plans as pruned (recovered plans are not redrawn over seeds; that spread is the draw noise measured nearest)."""
    out = []
    recovered = metrics.get("recovery", {})
    for label in conclusions.labels(metrics):
        before = {m: metrics[m][label]["ppl"] for m in conclusions.methods(metrics) if label in metrics[m]}
        leads_before, _ = conclusions.leaders(before, higher_is_better=False)
        for r in recoveries(metrics):
            after = {m: recovered[m][label][r]["ppl"] for m in before if r in recovered.get(m, {}).get(label, {})}
            if not after:
                continue
            factors = [before[m] / after[m] for m in after]
            improved = sum(f > 1 for f in factors)
            leads, runner = conclusions.leaders(after, higher_is_better=False)
            best = after[leads[0]]
            sentence = (f"At {label}, {r} recovery of {len(after)} plans lowers average PPL for {improved} of them "
                        f"(median factor {statistics.median(factors):.3g}); ")
            if len(after) == 1:
                out.append(sentence + f"it brings {leads[0]} from {ppl(before[leads[0]])} to {ppl(best)}.")
                continue
            same = set(leads) & set(leads_before)
            sentence += (f"the best after it is {conclusions.joined(leads)} ({ppl(best)}), "
                         + (f"as before ({ppl(before[leads_before[0]])})" if same else
                            f"where before it {conclusions.joined(leads_before)} was ({ppl(before[leads_before[0]])}: "
                            "the ranking changes)"))
            if runner is None:
                out.append(sentence + "; every recovered plan ties.")
                continue
            margin = after[runner] - best
            seeded = {m: plan_name(m, label) for m in (leads[0], runner)}
            scored = {m: recovered_name(name, r) for m, name in seeded.items()}
            judged = conclusions.judge_margin(margin, ppl_record, scored, seeded, seed_summary)
            out.append(sentence + f"; its margin over {runner} is {ppl(margin)}" + judged["sentence"])
    totals = {}
    for name, row in (record or {}).get("plans", {}).items():
        if row.get("same_fit_as"):  # plans of equal blocks share one fit: its time is counted once
            continue
        r = split_recovered(name)[1]
        seconds_sum, count = totals.get(r, (0.0, 0))
        totals[r] = (seconds_sum + row["seconds"], count + 1)
    out += [f"{r} recovery took {seconds(s)} in all for {n} distinct plans on this run's device."
            for r, (s, n) in sorted(totals.items())]
    return out


def added_seconds(run: dict) -> dict[str, float] | None:
    """{stage: seconds} that recovery adds to one model's run: the whole recover stage, and evaluate's and
    zeroshot's scoring of the recovered plans (their plan_seconds); None for records without plan_seconds."""
    scored = [(run.get(kind) or {}).get("plan_seconds") for kind in ("ppl", "zeroshot")]
    if not run.get("recovery") or None in scored:
        return None
    return {"recover": run["recovery"]["seconds"]} | {
        stage: sum(spent for name, spent in plan_seconds.items() if split_recovered(name)[1] != "none")
        for stage, plan_seconds in zip(("evaluate", "zeroshot"), scored, strict=True)}


def added_sentence(run: dict) -> str:
    """What recovery added to this model's run, stage by stage, from the records (empty without plan_seconds)."""
    added = added_seconds(run)
    if added is None:
        return ""
    return (f"Recovery added {seconds(sum(added.values()))} to {run['key']}'s run: "
            + ", ".join(f"{stage} {seconds(s)}" for stage, s in added.items())
            + " (evaluate and zeroshot: the recovered plans' own scoring time, `plan_seconds` in ppl.json and "
            "zeroshot.json).")


def markdown(run: dict) -> str:
    """README's recovery table and claims for one model (lorp.report.inputs.load's run)."""
    frame = table(run["metrics"], run["recovery"])
    rows = [[name, *map(str, cells)] for name, cells in zip(frame.index, frame.values.tolist(), strict=True)]
    seeds = (run["study"] or {}).get("seed_summary", {})
    return ("Recovery (`reports/results/{key}/recovery.json`, PPL and accuracy from `reports/metrics/{key}.json`):\n\n"
            .format(**run) + markdown_table(["plan", *frame.columns], rows) + "\n\n"
            + " ".join([*claims(run["metrics"], seeds, run["recovery"], run.get("ppl")), added_sentence(run)]).strip())
