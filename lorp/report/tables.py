"""The report's tables as small HTML tables of formatted strings (lorp.report.formats), with units in the headers
and
few enough columns to fit a page."""

import html

import pandas as pd

from lorp.evaluate.tasks import TASKS
from lorp.report import conclusions, paper
from lorp.report.formats import MISSING, number, ppl, size
from lorp.select.methods import plan_name


def to_html(frame: pd.DataFrame, table_id: str | None = None, bold: set[tuple[str, str]] = frozenset()) -> str:
    """frame (strings) as an HTML table; cells (row label, column) in bold are emphasised."""
    shown = frame.copy()
    for row, column in bold:
        shown.loc[row, column] = f"<b>{shown.loc[row, column]}</b>"
    return shown.to_html(escape=False, table_id=table_id, classes="lorp", na_rep=MISSING)


def headline(metrics: dict, study: dict | None, n_examples: int) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """One row per plan (dense first) from reports/metrics/<key>.json, and the cells to bold: each budget's best
    perplexity and accuracy. Seed columns come from study.json's seed_summary (the draws behind ppl_std)."""
    summary = (study or {}).get("seed_summary", {})
    rows = {"dense": {"budget": MISSING, "blocks removed": "0", "avg PPL ↓": ppl(metrics["dense"]["ppl"]),
                      "seed mean": MISSING, "seed sd": MISSING, "draws": MISSING,
                      "zero-shot acc ↑": number(metrics["dense"]["acc"], 3),
                      "acc SE": number(conclusions.binomial_se(metrics["dense"]["acc"], n_examples), 3),
                      "prefill ×": MISSING, "decode ×": MISSING, "ideal ×": MISSING}}
    bold = set()
    for label in conclusions.labels(metrics):
        present = [m for m in conclusions.methods(metrics) if label in metrics[m]]
        best_ppl = min(metrics[m][label]["ppl"] for m in present)
        best_acc = max(metrics[m][label]["acc"] for m in present)
        for method in present:
            row, name = metrics[method][label], plan_name(method, label)
            seeds = summary.get(name)
            rows[name] = {"budget": label, "blocks removed": str(row["blocks"]), "avg PPL ↓": ppl(row["ppl"]),
                          "seed mean": ppl(row.get("ppl_mean")), "seed sd": ppl(row.get("ppl_std")),
                          "draws": str(seeds["n"]) if seeds else MISSING,
                          "zero-shot acc ↑": number(row["acc"], 3),
                          "acc SE": number(conclusions.binomial_se(row["acc"], n_examples), 3),
                          "prefill ×": number(row.get("prefill_x"), 2), "decode ×": number(row.get("decode_x"), 2),
                          "ideal ×": number(row.get("ideal_x"), 2)}
            bold |= {(name, "avg PPL ↓")} if row["ppl"] == best_ppl else set()
            bold |= {(name, "zero-shot acc ↑")} if row["acc"] == best_acc else set()
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "plan"
    return frame, bold


def ppl_by_dataset(ppl_record: dict) -> pd.DataFrame:
    """Perplexity per evaluation set, one row per plan."""
    frame = pd.DataFrame({name: {k: ppl(v) for k, v in row.items() if k != "removed"}
                          for name, row in ppl_record["ppl"].items()}).T
    frame.index.name = "plan"
    return frame


def zeroshot_caption(zeroshot: dict) -> str:
    """What one example weighs, and how much of the requests' input ran (when zeroshot.json says: older records
    do not)."""
    limit, tokens = zeroshot["limit"], zeroshot.get("tokens")
    text = "Zero-shot accuracy per task (higher is better)" + (
        f", {limit} examples per task: one example moves a task's accuracy by {1 / limit:.2f}." if limit else ".")
    if tokens and tokens["shared_context"]:
        text += (f" Each question's context ran once for all its choices: {tokens['run']:,} model input tokens per "
                 f"plan where lm-eval's per-choice requests take {tokens['per_choice']:,}.")
    elif tokens:
        text += " Each choice ran with its own copy of the question's context (lm-eval's per-choice requests)."
    return text


def zeroshot_by_task(zeroshot: dict) -> pd.DataFrame:
    """Accuracy per task (2 decimals: at tens of examples per task the third is noise), one row per plan."""
    frame = pd.DataFrame({name: {(TASKS[t].label if t in TASKS else t): number(v, 3 if t == "average" else 2)
                                 for t, v in row.items()}
                          for name, row in zeroshot["accuracy"].items()}).T
    frame.index.name = "plan"
    return frame


def _interval(b: dict, kind: str) -> str:
    """A speed-up with its 95 % interval (paired bench), or ± its spread (records of the earlier bench)."""
    if f"{kind}_ci" in b:
        return f"{b[f'{kind}_speedup']:.2f} [{b[f'{kind}_ci'][0]:.2f}, {b[f'{kind}_ci'][1]:.2f}]"
    return f"{b[f'{kind}_speedup']:.2f} (±{100 * b[f'{kind}_spread']:.0f} %)"


def efficiency(bench: dict) -> pd.DataFrame:
    """Size and speed per plan, sizes in one unit; speed-ups with their 95 % interval over the paired timings, and
    the plan whose timing a plan shares (plans of one architecture are timed once)."""
    rows = {}
    models = bench["models"].values()
    unit = "GiB" if max(b["checkpoint_bytes"] for b in models) >= 2**30 else "MiB"
    for name, b in bench["models"].items():
        rows[name] = {"blocks": str(b["blocks"]), "params": f"{b['parameters'] / 1e6:.1f} M",
                      "checkpoint": size(b["checkpoint_bytes"], unit),
                      "peak memory": size(b["peak_memory_bytes"], unit),
                      "prefill tok/s": f"{b['prefill_tokens_per_s']:.0f}",
                      "decode tok/s": f"{b['decode_tokens_per_s']:.1f}",
                      "prefill × [95 %]": _interval(b, "prefill"), "decode × [95 %]": _interval(b, "decode"),
                      "ideal ×": number(b["ideal_speedup"], 2),
                      **({"pairs": f"{b['prefill_pairs']}/{b['decode_pairs']}"} if "prefill_pairs" in b else {}),
                      "timed as": "itself" if b.get("measured_as", name) == name else b["measured_as"]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "plan"
    return frame


def draws(study: dict, budget_labels: list[str]) -> pd.DataFrame:
    """One row per calibration draw: what was drawn, the RLS and K it gives, and LoRP's plan (Jaccard against the
    default draw's plan) and perplexity at each budget."""
    rows = []
    for draw in study["draws"]:
        row = {"draw": draw["kind"], "corpus": draw["corpus"], "samples": str(draw["n_samples"]),
               "seed": str(draw["seed"]), "RLS": number(draw["rls"], 3), "K": str(draw["k"])}
        for label in budget_labels:
            name = plan_name("lorp", label)
            row[f"Jaccard {label}"] = number(draw["jaccard"].get(name), 2)
            row[f"PPL {label}"] = ppl(draw["ppl"].get(name, {}).get("average"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("draw")


def paper_reference() -> pd.DataFrame:
    """The paper's numbers, quoted (strings as printed; accuracy in %)."""
    rows = {}
    for r in paper.RESULTS:
        row = {"removed": f"{r['removed']} of {r['blocks']}", "RLS": f"{r['rls']:.3f}"}
        row |= {f"PPL {m}": v for m, v in zip(paper.METHODS, r["ppl"], strict=True)}
        row |= {f"acc % {m}": f"{v:.2f}" for m, v in zip(paper.METHODS, r["acc"], strict=True)}
        rows[r["model"]] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model (paper)"
    return frame


def this_run(runs: list[dict]) -> pd.DataFrame:
    """This run's numbers in the paper table's columns, one row per model and budget."""
    rows = {}
    for run in runs:
        metrics, n = run["metrics"], run["model_info"]["num_blocks"]
        for label in conclusions.labels(metrics):
            got = {m: metrics[m][label] for m in paper.METHODS if label in metrics.get(m, {})}
            blocks = next(iter(got.values()))["blocks"] if got else MISSING
            row = {"removed": f"{blocks} of {n}", "RLS": number(metrics["selection"]["rls"], 3)}
            row |= {f"PPL {m}": ppl(got[m]["ppl"]) if m in got else MISSING for m in paper.METHODS}
            row |= {f"acc % {m}": number(100 * got[m]["acc"], 2) if m in got else MISSING for m in paper.METHODS}
            rows[f"{run['key']} {label}"] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model (this run)"
    return frame


def key_values(pairs: dict[str, str]) -> str:
    """A two-column table of labelled values, escaped."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs.items())
    return f'<table class="lorp kv"><tbody>{body}</tbody></table>'
