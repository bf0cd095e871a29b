"""Conclusions computed from the run's numbers, never typed: per model and budget, which method wins on average
perplexity and on zero-shot accuracy, and whether its margin is larger than the run's own noise.

Rules (stated in every sentence that uses them):
- perplexity: the margin between the best and the next method is distinguishable only when its paired 95 %
  evaluation-sample interval (a bootstrap over the evaluation windows, lorp.report.noise) lies above zero and, where
  the study redrew both plans, it exceeds SPREAD_FACTOR times the larger of their standard deviations over the
  calibration draws (study.json seed_summary); the sentence names the noise it could not measure;
- zero-shot: an exact McNemar test on the examples both plans scored (zeroshot.json's per-example correctness);
  for records without it, SPREAD_FACTOR times the binomial standard error of the difference of two averages.
"""

import math
from typing import Any

from lorp.report import noise
from lorp.report.formats import ppl
from lorp.select.methods import plan_name

SPREAD_FACTOR = 2.0
P_VALUE = 0.05  # a paired test below this calls two plans' accuracies distinguishable
NOT_METHODS = {"dense", "selection", "recovery"}


def methods(metrics: dict) -> list[str]:
    """The pruning methods of a metrics file, in its order."""
    return [m for m in metrics if m not in NOT_METHODS]


def labels(metrics: dict) -> list[str]:
    """Budget labels of a metrics file, fewest blocks removed first."""
    blocks = {label: row["blocks"] for m in methods(metrics) for label, row in metrics[m].items()}
    return sorted(blocks, key=lambda label: (blocks[label], label))


def binomial_se(acc: float, n: int) -> float:
    """Standard error of an accuracy measured on n examples."""
    return math.sqrt(acc * (1 - acc) / n)


def examples_scored(zeroshot: dict) -> int:
    """Examples behind one zero-shot average: every scored task's examples (the limit, or the whole set)."""
    return sum(n for n in zeroshot["examples"].values() if n)


def leaders(values: dict[str, float], higher_is_better: bool) -> tuple[list[str], str | None]:
    """The methods tied at the best value, and the best of the rest (None when every method ties)."""
    pick = max if higher_is_better else min
    best = pick(values.values())
    winners = [m for m, v in values.items() if v == best]
    rest = {m: v for m, v in values.items() if v != best}
    return winners, (pick(rest, key=rest.get) if rest else None)


def joined(winners: list[str]) -> str:
    return winners[0] if len(winners) == 1 else ", ".join(winners[:-1]) + f" and {winners[-1]} (tied)"


def _budget(metrics: dict, label: str, num_blocks: int) -> str:
    blocks = next(metrics[m][label]["blocks"] for m in methods(metrics) if label in metrics[m])
    return f"At {label} ({blocks} of {num_blocks} blocks removed)"


def ppl_claim(metrics: dict, seed_summary: dict, label: str, num_blocks: int, ppl_record: dict | None = None
              ) -> dict[str, Any]:
    """Winner on average perplexity (default calibration draw) at one budget, and whether its margin over the
    runner-up is beyond noise of both kinds: the evaluation sample (a paired bootstrap over the evaluation windows,
    lorp.report.noise, where ppl.json keeps per-window losses) and the calibration draw (SPREAD_FACTOR x the larger
    seed standard deviation of the two, where the study redrew both)."""
    values = {m: metrics[m][label]["ppl"] for m in methods(metrics) if label in metrics[m]}
    winners, runner = leaders(values, higher_is_better=False)
    best = values[winners[0]]
    claim = {"label": label, "metric": "ppl", "winners": winners, "value": best, "runner_up": runner,
             "runner_value": None, "margin": None, "threshold": None, "interval": None, "distinguishable": None}
    head = f"{_budget(metrics, label, num_blocks)}, {joined(winners)} gives the lowest average perplexity, {ppl(best)}"
    if runner is None:
        return claim | {"sentence": head + ": every method ties."}
    margin = values[runner] - best
    claim |= {"runner_value": values[runner], "margin": margin}
    head += f", against {ppl(values[runner])} for {runner} (margin {ppl(margin)})"
    pair = {m: plan_name(m, label) for m in (winners[0], runner)}
    judged = judge_margin(margin, ppl_record, pair, pair, seed_summary)
    return claim | judged | {"sentence": head + judged["sentence"]}


def judge_margin(margin: float, ppl_record: dict | None, scored: dict[str, str], seeded: dict[str, str],
                 seed_summary: dict) -> dict[str, Any]:
    """A PPL margin between two plans {method: name}, better first, against both kinds of noise: the paired
    evaluation-sample interval of the `scored` plans (ppl.json's per-window losses) and SPREAD_FACTOR x the larger
    calibration-seed sd of the `seeded` plans (the plans as pruned: recovery is not redrawn). Distinguishable only
    when every noise measured says so; the sentence goes after the margin."""
    judged: dict[str, Any] = {"interval": None, "threshold": None, "distinguishable": None}
    verdicts, parts = [], []
    if ppl_record is not None and "window_nll" in ppl_record:
        lo, hi = noise.margin_interval(ppl_record, *scored.values())
        judged["interval"] = (lo, hi)
        verdicts.append(lo > 0)
        parts.append(f"its 95 % evaluation-sample interval (paired bootstrap over the evaluation windows) is "
                     f"{ppl(lo)} to {ppl(hi)}, " + ("above zero" if lo > 0 else "which includes zero"))
    missing = [m for m, name in seeded.items() if name not in seed_summary]
    if missing:
        parts.append(f"no spread over calibration seeds was measured for {' or '.join(missing)}")
    else:
        judged["threshold"] = SPREAD_FACTOR * max(seed_summary[name]["std"] for name in seeded.values())
        verdicts.append(margin > judged["threshold"])
        parts.append(("larger than" if verdicts[-1] else "within") + f" {SPREAD_FACTOR:g} x the larger standard "
                     f"deviation over calibration seeds ({ppl(judged['threshold'])})")
    if not verdicts:
        return judged | {"sentence": f"; {parts[0]}, so whether the margin exceeds noise is unknown."}
    judged["distinguishable"] = all(verdicts)
    verdict = "distinguishable." if judged["distinguishable"] else "not distinguishable."
    return judged | {"sentence": f": {'; '.join(parts)}: {verdict}"}


def mcnemar_p(a: list[int], b: list[int]) -> float:
    """Exact two-sided McNemar test of two plans' correctness on the same examples: the probability, if neither
    were better, of a split of their discordant examples at least this uneven (binomial, p = 1/2)."""
    only_a = sum(x > y for x, y in zip(a, b, strict=True))
    only_b = sum(y > x for x, y in zip(a, b, strict=True))
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def paired_correct(zeroshot: dict | None, name: str) -> list[int] | None:
    """One plan's per-example correctness over every scored task, in a fixed order; None where not recorded."""
    tasks = (zeroshot or {}).get("correct", {}).get(name)
    return None if tasks is None else [x for task in sorted(tasks) for x in tasks[task]]


def acc_claim(metrics: dict, n_examples: int, limit: int | None, label: str, zeroshot: dict | None = None
              ) -> dict[str, Any]:
    """Winner on average zero-shot accuracy at one budget, and whether its margin over the runner-up is beyond
    noise: an exact McNemar test on the examples both scored (P_VALUE), where zeroshot.json keeps per-example
    correctness; else SPREAD_FACTOR x the binomial standard error of the difference at n_examples."""
    values = {m: metrics[m][label]["acc"] for m in methods(metrics) if label in metrics[m]}
    winners, runner = leaders(values, higher_is_better=True)
    best = values[winners[0]]
    claim = {"label": label, "metric": "acc", "winners": winners, "value": best, "runner_up": runner,
             "runner_value": None, "margin": None, "threshold": None, "p_value": None, "distinguishable": None}
    scope = f"{n_examples} examples per average" + (f", at most {limit} per task" if limit else "")
    head = f"On zero-shot accuracy at {label} ({scope}), {joined(winners)} scores highest, {best:.3f}"
    if runner is None:
        return claim | {"sentence": head + ": every method ties."}
    margin = best - values[runner]
    head += f", against {values[runner]:.3f} for {runner} (margin {margin:.3f} accuracy)"
    claim |= {"runner_value": values[runner], "margin": margin}
    pair = [paired_correct(zeroshot, plan_name(m, label)) for m in (winners[0], runner)]
    if None not in pair:
        p = mcnemar_p(*pair)
        distinguishable = p < P_VALUE
        verdict = (f"an exact McNemar test on the {len(pair[0])} examples both scored gives p = {p:.3g}: "
                   + ("distinguishable." if distinguishable else "not distinguishable at this example count."))
        return claim | {"p_value": p, "distinguishable": distinguishable, "sentence": f"{head}; {verdict}"}
    se = math.hypot(binomial_se(best, n_examples), binomial_se(values[runner], n_examples))
    threshold = SPREAD_FACTOR * se
    distinguishable = margin > threshold
    verdict = ("larger than" if distinguishable else "within") + \
        f" {SPREAD_FACTOR:g} binomial standard errors of the difference ({threshold:.3f}): " + \
        ("distinguishable." if distinguishable else "not distinguishable at this example count.")
    return claim | {"threshold": threshold, "distinguishable": distinguishable, "sentence": f"{head}, {verdict}"}


def lorp_rank(metrics: dict, label: str) -> dict[str, Any] | None:
    """LoRP's rank on average perplexity at one budget (1 = best; ties share a rank), None without LoRP."""
    values = {m: metrics[m][label]["ppl"] for m in methods(metrics) if label in metrics[m]}
    if "lorp" not in values:
        return None
    best = min(values.values())
    rank = 1 + sum(v < values["lorp"] for v in values.values())
    ratio = values["lorp"] / best
    sentence = (f"LoRP ranks {rank} of {len(values)} at {label} (average perplexity {ppl(values['lorp'])}, "
                + ("the best)." if rank == 1 else f"{ratio:.3g} x the best)."))
    return {"label": label, "rank": rank, "of": len(values), "ratio": ratio, "sentence": sentence}


def model_claims(metrics: dict, study: dict | None, zeroshot: dict, num_blocks: int,
                 ppl_record: dict | None = None) -> list[dict[str, Any]]:
    """Every claim for one model: per budget, perplexity, zero-shot and LoRP's rank, in that order."""
    seed_summary = (study or {}).get("seed_summary", {})
    n_examples = examples_scored(zeroshot)
    claims = []
    for label in labels(metrics):
        claims += [ppl_claim(metrics, seed_summary, label, num_blocks, ppl_record),
                   acc_claim(metrics, n_examples, zeroshot["limit"], label, zeroshot)]
        rank = lorp_rank(metrics, label)
        if rank is not None:
            claims.append({"metric": "lorp_rank", **rank})
    return claims


def step_factors(marginal: dict, name: str) -> list[tuple[int, float]]:
    """(block, factor) for each block of plan name removed in the method's order: the factor by which that removal
    multiplied calibration perplexity (marginal.json)."""
    steps = marginal["plans"][name]
    before = [marginal["dense_ppl"], *steps["ppl"][:-1]]
    return [(block, after / b) for block, b, after in zip(steps["order"], before, steps["ppl"], strict=True)]


def lorp_diagnosis(plans: list[dict], marginal: dict, importance: dict, clusters: dict) -> list[str]:
    """For each LoRP plan, the block that costs it most when removed in order, where LoRP took it from and what
    that block costs alone: the reason a LoRP plan fails, in numbers."""
    ablation = importance["ablation_ppl"]
    sentences = []
    for plan in (p for p in plans if p["method"] == "lorp" and p["name"] in marginal["plans"]):
        block, worst = max(step_factors(marginal, plan["name"]), key=lambda step: step[1])
        step = next(s for s in plan["scores"]["steps"] if s["block"] == block)
        members = clusters["members"][step["cluster"]]
        alone = ablation[block]
        sentences.append(
            f"{plan['name']}: its costliest block is {block}, taken in Stage {step['stage']} from cluster "
            f"{step['cluster']} (blocks {members[0]}-{members[-1]}, member redundancy r = {step['r']:.3f}); "
            + (f"removed alone it gives calibration perplexity {ppl(alone)} against "
               f"{ppl(importance['dense_ppl'])} dense, " if alone is not None
               else "it is protected from the single-block ablation, ")
            + f"and in the plan it multiplies perplexity by {worst:.3g}.")
    return sentences


def across_models(claims: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One sentence per metric over every (model, budget): how often LoRP wins and how often the winner's margin
    is distinguishable from noise."""
    ranks = [f"{key} {c['label']}: {c['rank']} of {c['of']}" + ("" if c["rank"] == 1 else f" (×{c['ratio']:.3g} the "
                                                                                      "best PPL)")
             for key, per_model in claims.items() for c in per_model if c["metric"] == "lorp_rank"]
    sentences = [f"Where LoRP ranks on average perplexity — {'; '.join(ranks)}."] if ranks else []
    for metric, what in (("ppl", "average perplexity"), ("acc", "zero-shot accuracy")):
        rows = [c for per_model in claims.values() for c in per_model if c["metric"] == metric]
        if not rows:
            continue
        lorp_wins = sum("lorp" in c["winners"] for c in rows)
        clear = sum(c["distinguishable"] is True for c in rows)
        unknown = sum(c["distinguishable"] is None and c["runner_up"] is not None for c in rows)  # not ties
        sentences.append(
            f"On {what}, LoRP is best (or tied best) at {lorp_wins} of {len(rows)} model-budget pairs; "
            f"the winner's margin over the runner-up is distinguishable from noise at {clear} of them"
            + (f" (noise not measured at {unknown})." if unknown else "."))
    return sentences
