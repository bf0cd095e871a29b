"""The report's sections as HTML, assembled from the artefacts (lorp.report.inputs.load), so the notebook only
calls these and stays a few lines long: an overview, one section per model, a summary across models, the paper's
numbers beside this run's, and provenance."""

import datetime
import hashlib
import html
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lorp.report import conclusions, figures, paper, recovery, tables
from lorp.report.formats import MISSING, number, ppl, seconds
from lorp.report.provenance import flat, revision, stage_seconds

STYLE = """<style>
table.lorp { border-collapse: collapse; font-size: 12px; margin: 0.4em 0 1em; }
table.lorp th, table.lorp td { padding: 2px 7px; text-align: right; white-space: nowrap; }
table.lorp.kv td { text-align: left; white-space: normal; }
table.lorp tbody tr:nth-child(odd) { background: #f5f5f5; }
figure.lorp { margin: 1em 0 1.5em; }
figure.lorp img { max-width: 100%; height: auto; }
figure.lorp figcaption, p.table-caption { font-size: 13px; color: #333; max-width: 62em; }
ul.claims li { margin-bottom: 0.3em; max-width: 62em; }
</style>"""
REPORT_LIBRARIES = ("matplotlib", "pandas", "papermill", "nbconvert")


def _p(text: str, css: str = "") -> str:
    return f'<p class="{css}">{html.escape(text)}</p>' if css else f"<p>{html.escape(text)}</p>"


def _claims(sentences: list[str]) -> str:
    return '<ul class="claims">' + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"


def _table(frame: pd.DataFrame, caption: str, **kwargs) -> str:
    return tables.to_html(frame, **kwargs) + _p(caption, "table-caption")


def claims(run: dict) -> list[dict]:
    """Every conclusion for one model (lorp.report.conclusions.model_claims on its artefacts)."""
    return conclusions.model_claims(run["metrics"], run["study"], run["zeroshot"], run["model_info"]["num_blocks"],
                                    run["ppl"])


def overview(runs: list[dict]) -> str:
    """The findings first (computed over every model and budget; each model's section states them in full),
    then what was run."""
    per_model = {run["key"]: claims(run) for run in runs}
    parts = [STYLE, "<h2>Findings</h2>", _claims(conclusions.across_models(per_model)),
             _table(_verdicts(per_model), "Per model and budget: the best method, the runner-up, the margin and the "
                                          "noise it is judged against. Perplexity: the margin's 95 % interval from a "
                                          "paired bootstrap over the evaluation windows, and twice the larger sd over "
                                          "calibration seeds where the study redrew both plans; both must clear. "
                                          "Zero-shot: an exact McNemar test on the examples both plans scored. Each "
                                          "model's section below states these in full.")]
    setup = {}
    for run in runs:
        info, cal, ev, zs = run["model_info"], run["calibration"], run["ppl"], run["zeroshot"]
        windows = "; ".join(f"{k} {v['windows']} × {v['seqlen']}" for k, v in ev["eval_windows"].items())
        setup[run["key"]] = {
            "source": info["source"], "architecture": info["architecture"], "blocks": str(info["num_blocks"]),
            "parameters": f"{info['parameters'] / 1e6:.1f} M", "dtype / device": f"{ev['dtype']} / {ev['device']}",
            "calibration": f"{cal['corpus']}, {cal['n_samples']} × {cal['seqlen']} tokens, seed {cal['seed']}",
            "RLS → K": f"{number(run['rls']['rls'], 4)} → {run['rls']['k']} ({run['rls']['k_source']})",
            "perplexity windows": windows,
            "zero-shot": (f"limit {zs['limit']} per task" if zs["limit"] else "every example")
            + (f"; skipped {', '.join(zs['skipped'])}" if zs["skipped"] else "")}
    frame = pd.DataFrame(setup)
    frame.index.name = "setting"
    parts += ["<h2>Setup</h2>", _table(frame, "What each model's run measured. Perplexity: non-overlapping "
                                              "windows (windows × tokens per set); zero-shot: lm-evaluation-harness, "
                                              "0-shot, acc_norm where the task has it, else acc.")]
    return "".join(parts)


def model(run: dict, numbers: Iterator[int]) -> str:
    """One model's section: headline table and conclusions, the diagnosis, the sweeps and the detailed tables."""
    key, info, metrics, study = run["key"], run["model_info"], run["metrics"], run["study"]
    n_examples = conclusions.examples_scored(run["zeroshot"])
    headline, bold = tables.headline(metrics, study, n_examples)
    parts = [f'<h2 id="model-{html.escape(key)}">Model {html.escape(key)} ({html.escape(info["source"])})</h2>',
             "<h3>Headline</h3>",
             tables.to_html(headline, table_id=f"headline-{key}", bold=bold),
             _p(f"From reports/metrics/{key}.json. Average PPL over the evaluation sets on the default calibration "
                "draw (lower is better); seed mean and sd over the calibration draws (default + study seeds) where "
                "the study re-selected the method; zero-shot accuracy averaged over tasks with its binomial "
                f"standard error at {n_examples} examples; speed-ups against the dense model (measured prefill and "
                "decode, ideal = FLOP ratio). Bold: each budget's best.", "table-caption"),
             _claims([c["sentence"] for c in claims(run)])]
    parts += ["<h3>Diagnosis: where each method removes blocks, and what that costs</h3>",
              _p(f"RLS = {number(run['rls']['rls'], 4)} (mean off-diagonal S = "
                 f"{run['rls']['mean_off_diagonal']:.4f}) gives K = {run['rls']['k']}; clusters: "
                 + "; ".join(f"{k}: blocks {m[0]}–{m[-1]}" for k, m in enumerate(run["clusters"]["members"])) + "."),
              figures.figure_html(figures.similarity_heatmap(run["similarity"], run["clusters"]["labels"], f"S, {key}"),
                                  numbers,
                            "Cosine similarity S between the hidden states entering blocks i and j, averaged over "
                            "calibration tokens; dashed lines are LoRP's cluster boundaries. Look for bright squares "
                            "on the diagonal (local redundancy, which LoRP's clusters should follow) and for rows "
                            "that stay dark (blocks unlike every other, costly to remove).")]
    if run["importance"] is not None:
        parts.append(figures.figure_html(
            figures.block_importance(run["importance"], run["clusters"], run["plans"]), numbers,
            "Top: LoRP's clusters. Middle: calibration PPL with each block removed alone (log; dashed: dense) "
            "and LoRP's member redundancy r(l) (right axis), with the blocks LoRP's Stage 1 (▲, coverage) and "
            "Stage 2 (▼, residual allocation) took at the largest budget. Bottom: each plan's removed blocks "
            "on the same axis. A plan fails where its dots sit on the peaks of the ablation curve; LoRP fails "
            "where high redundancy r(l) coincides with a peak."))
    if run["marginal"] is not None:
        parts.append(figures.figure_html(
            figures.marginal_costs(run["marginal"], run["plans"], info["num_blocks"]), numbers,
            "Each plan's blocks removed one at a time in the method's own order: the factor by which each "
            "removal multiplies calibration PPL, placed at the removed block (numbers: factors above 1.5 or "
            "below 1/1.5). One red cell with a large factor is the block that breaks the plan."))
        if run["importance"] is not None:
            parts.append(_claims(conclusions.lorp_diagnosis(run["plans"], run["marginal"], run["importance"],
                                                             run["clusters"])))
    parts += ["<h3>Sweeps</h3>",
              figures.figure_html(figures.ppl_vs_budget(metrics), numbers,
                            "Average PPL (log) against blocks removed, per method: lines join the default "
                            "calibration draw; error bars (offset slightly to the right) are the mean ± sd over "
                            "the calibration seeds where the study measured them; dashed: dense. A method whose "
                            "line sits above another by more than both bars is worse beyond calibration noise.")]
    if study is None:
        parts.append(_p(f"reports/results/{key}/study.json is not part of this run: no seed spread, K ablation or "
                        "calibration size/source sweep to show."))
    else:
        budget_labels = list(study["budgets"])
        parts += [figures.figure_html(figures.k_ablation(study["k_sweep"]), numbers,
                                "LoRP's average PPL (log) with the number of clusters K forced, per budget, on the "
                                "default draw; the star is the K that the RLS policy chose. If a star sits well above "
                                "the minimum of its line, the RLS → K table picked the wrong granularity here."),
                  figures.figure_html(figures.calibration_draws(study, budget_labels), numbers,
                                "Per calibration draw (default, other seeds, sizes, corpora): the RLS it gives (K "
                                "on the bar), the Jaccard overlap of LoRP's plan with the default draw's plan, and "
                                "LoRP's average PPL. Jaccard 1 means the same blocks; low Jaccard with similar PPL "
                                "means several plans are equally good, low Jaccard with varying PPL means the "
                                "selection is sensitive to the calibration data."),
                  _table(tables.draws(study, budget_labels),
                         f"The calibration draws of the previous figure: {study['evaluated']} distinct block sets "
                         f"evaluated by the study, {study['reused']} taken from the headline evaluation; it took "
                         f"{seconds(study['seconds']['total'])}.")]
    if metrics.get("recovery"):
        parts += ["<h3>Recovery</h3>",
                  _table(recovery.table(metrics, run["recovery"]),
                         "Each plan as pruned and after each recovery: linear = a least-squares linear map per removed "
                         "run fitted on calibration activations and folded into the block before it (training-free; "
                         "a diagonal map on architectures that normalise the MLP branch, e.g. Gemma-3); lora = LoRA "
                         "adapters trained on calibration-corpus text and merged (only the plans recovery.lora_methods "
                         "names). A recovered plan keeps its plan's architecture, so its speed is the plan's. Cost: "
                         "this run's seconds and calibration tokens; plans of equal blocks share one linear fit."),
                  _claims([*recovery.claims(metrics, (study or {}).get("seed_summary", {}), run["recovery"],
                                           run["ppl"]),
                           *filter(None, [recovery.added_sentence(run)])])]
    parts += ["<h3>Details</h3>",
              _table(tables.ppl_by_dataset(run["ppl"]), "Perplexity per evaluation set (lower is better)."),
              _table(tables.zeroshot_by_task(run["zeroshot"]), tables.zeroshot_caption(run["zeroshot"])),
              _table(tables.efficiency(run["bench"]), _efficiency_caption(run["bench"]))]
    return "".join(parts)


def bench_method(first: dict) -> str:
    """How a bench record timed its models, from the record's own settings (older records lack some of them)."""
    if "prefill_ci" not in first:
        return "median of {repeats} after {warmup} warm-ups".format(**first)
    threads = first.get("threads")
    more = (" (then {more_pairs} more at a time, up to {max_pairs}, while the 95 % interval is wider than "
            "±{spread:.1f} % of its median)".format(spread=100 * first["target_spread"], **first)
            if "target_spread" in first else "")
    return ("{repeats} pairs with the dense model after {warmup}".format(**first) + more + ", alternating order"
            + (f", each member the fastest of {first['best_of']} calls" if "best_of" in first else "")
            + (f", on {threads} CPU thread{'s' if threads != 1 else ''}" if threads and first["device"] == "cpu"
               else "") + ", median of the paired ratios")


def _efficiency_caption(bench: dict) -> str:
    first = next(iter(bench["models"].values()))
    interval = ("with its bootstrap 95 % interval" if "prefill_ci" in first else "± the spread (max − min) / median")
    return (f"Size and speed on {first['device']} ({first['dtype']}): prefill {first['batch']} × {first['seqlen']} "
            f"tokens, decode {first['new_tokens']} tokens after a {first['prompt_len']}-token prompt; "
            f"{bench_method(first)}, {interval}. Plans of one architecture share one timing (measured_as)"
            + ("; pairs: the pairs timed for prefill / decode. " if "prefill_pairs" in first else ". ")
            + f"Peak memory: {first['peak_memory_kind']}. Ideal × = ratio of FLOPs per token.")


def _verdicts(per_model: dict[str, list[dict]]) -> pd.DataFrame:
    rows = []
    for key, found in per_model.items():
        for c in (c for c in found if c["metric"] in ("ppl", "acc")):
            digits = 3 if c["metric"] == "acc" else 1
            rows.append({"model": key, "budget": c["label"],
                         "metric": "avg PPL" if c["metric"] == "ppl" else "zero-shot acc",
                         "best": ", ".join(c["winners"]), "runner-up": c["runner_up"] or MISSING,
                         "margin": (ppl(c["margin"]) + " PPL") if c["metric"] == "ppl" and c["margin"] is not None
                         else number(c["margin"], digits),
                         "margin's 95 % interval (evaluation sample)": MISSING if not c.get("interval") else
                         f"{ppl(c['interval'][0])} to {ppl(c['interval'][1])}",
                         "other noise": f"McNemar p = {c['p_value']:.3g}" if c.get("p_value") is not None else
                         f"2 × seed sd {number(c['threshold'], digits)}" if c["threshold"] is not None and
                         c["metric"] == "ppl" else f"2 × binomial SE {number(c['threshold'], digits)}"
                         if c["threshold"] is not None else MISSING,
                         "distinguishable": {True: "yes", False: "no", None: "not measured"}[c["distinguishable"]]})
    return pd.DataFrame(rows).set_index(["model", "budget", "metric"])


def across_models(runs: list[dict], numbers: Iterator[int]) -> str:
    """Locality and efficiency of every model side by side."""
    return "".join([
        "<h2>Across models</h2>",
        figures.figure_html(figures.decay_curves(runs), numbers,
                      "Mean similarity against normalised block distance, per model. A curve that falls fast "
                      "means locally concentrated redundancy (high RLS, few clusters); a flat one, redundancy spread "
                      "over the depth (low RLS, more clusters)."),
        figures.figure_html(figures.speedups(runs), numbers,
                      "Measured speed-up of prefill and decode per distinct pruned architecture (bars: the median "
                      "of its paired ratios against the dense model; error bars: the bootstrap 95 % interval of that "
                      "median) against the ideal FLOP ratio (black tick). Plans of one architecture share one "
                      "timing; each bar's label names them. An interval that misses the tick shows costs the FLOP "
                      "count leaves out, or saves, such as each layer's fixed per-step cost."),
    ])


def against_paper(runs: list[dict]) -> str:
    """The paper's numbers, quoted, beside this run's, with the difference in scale stated."""
    scale = "; ".join(
        f"{run['key']}: {run['model_info']['parameters'] / 1e6:.0f} M parameters, {run['model_info']['num_blocks']} "
        f"blocks, calibration {run['calibration']['n_samples']} × {run['calibration']['seqlen']} tokens of "
        f"{run['calibration']['corpus']}, perplexity on "
        + ", ".join(f"{v['windows']} × {v['seqlen']}" for v in run["ppl"]["eval_windows"].values())
        + " tokens, zero-shot "
        + (f"limited to {run['zeroshot']['limit']} examples per task" if run["zeroshot"]["limit"] else "complete")
        for run in runs)
    parameters = [run["model_info"]["parameters"] for run in runs]
    smaller = f"{paper.PARAMETERS[0] / max(parameters):.0f} to {paper.PARAMETERS[1] / min(parameters):.0f}"
    return "".join([
        "<h2>Against the paper</h2>",
        _p(f"Quoted from the paper ({paper.SOURCE}); not measured here. Its scale: {paper.PROTOCOL}. "
           f"This run's scale: {scale}. The models here have {smaller} times fewer parameters, with shorter "
           "windows and fewer zero-shot examples: compare the ranking of the methods and the role of RLS, not the "
           "values."),
        _table(tables.paper_reference(), "Quoted from the paper: average PPL over WikiText-2, C4 and PTB, and average "
                                    "zero-shot accuracy (%) over 9 tasks, per method. Efficiency: "
                                    f"{paper.EFFICIENCY}."),
        _table(tables.this_run(runs), "This run, in the same columns (accuracy in %, over the tasks listed in Setup)."),
    ])


def provenance(root: str | Path, runs: list[dict], sources: dict | None) -> str:
    """What produced these numbers: code revision, parameters, libraries, data, devices, date and wall times."""
    root = Path(root)
    params = root / "params.yaml"
    versions = runs[0]["model_info"]["versions"] | {n: importlib.metadata.version(n) for n in REPORT_LIBRARIES}
    facts = {
        "git revision": revision(root),
        "params.yaml sha256": hashlib.sha256(params.read_bytes()).hexdigest()[:16] if params.exists() else MISSING,
        "rendered": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "data source": MISSING if sources is None else "; ".join(f"{k}: {v}" for k, v in flat(sources).items()),
        "devices": "; ".join(f"{r['key']}: {r['ppl']['device']}, {r['ppl']['dtype']}" for r in runs),
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
    times = pd.DataFrame({run["key"]: {stage: seconds(s) if s is not None else MISSING
                                       for stage, s in stage_seconds(run).items()} for run in runs})
    times.index.name = "stage"
    return "".join(["<h2>Provenance</h2>", tables.key_values(facts),
                    _table(times, "Wall time per stage, from the seconds each stage recorded in its output.")])
