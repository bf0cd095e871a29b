"""README.md's results, written from the committed records so that the README cannot quote a number they do not hold.

Each generated block of README.md sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`.
`python -m lorp.report.readme [--check] [--root DIR]` (make readme) rewrites every block from the records under the
project root (inputs.load per model of params.yaml, reports/bench/compute.json where it exists), or with --check
exits 1 naming the blocks that differ. Numbers and noise thresholds are the report's (formats, conclusions)."""

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from lorp.errors import LorpError
from lorp.io import read_json, write_text
from lorp.report import conclusions, inputs, recovery
from lorp.report.formats import MISSING, markdown_table, number, ppl, seconds, value_range
from lorp.report.readme_costs import LOADED, cost_block, efficiency_block, memory_block
from lorp.select.methods import plan_name

README = "README.md"
SET_LABELS = {"wikitext2": "WikiText-2", "ptb": "PTB", "c4": "C4"}
MARKER = re.compile(r"<!-- generated:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /generated:(?P=name) -->", re.S)


class ReadmeError(LorpError, ValueError):
    """README.md's generated blocks do not match the blocks the records give (missing or unknown markers)."""


def model_keys(root: str | Path) -> list[str]:
    """The models of the project's params.yaml, in its order (the README's order)."""
    return list(yaml.safe_load((Path(root) / "params.yaml").read_text())["models"])


def _blocks(ids: list[int]) -> str:
    return " ".join(map(str, ids))


def _span(members: list[int]) -> str:
    if len(members) > 1 and members == list(range(members[0], members[-1] + 1)):
        return f"{{{members[0]}–{members[-1]}}}"
    return "{" + _blocks(members) + "}"


def _same(runs: list[dict], get: Callable[[dict], str]) -> str:
    """One value when every model has it, else the value per model."""
    values = {run["key"]: get(run) for run in runs}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return "; ".join(f"{key}: {value}" for key, value in values.items())


def plans_table(run: dict) -> str:
    """Every plan: removed blocks, PPL per set and average, mean ± sd over the calibration draws, zero-shot."""
    metrics, summary = run["metrics"], (run["study"] or {}).get("seed_summary", {})
    draws = max((s["n"] for s in summary.values()), default=0)
    removed = {p["name"]: p["removed"] for p in run["plans"]}
    sets = list(run["ppl"]["eval_windows"])
    header = ["plan", "removed blocks", *(SET_LABELS.get(s, s) for s in sets), "average",
              f"mean ± sd over {draws} draws", "zero-shot avg"]
    rows = []
    for label in conclusions.labels(metrics):
        for name in (plan_name(m, label) for m in conclusions.methods(metrics) if label in metrics[m]):
            row, seeds = run["ppl"]["ppl"][name], summary.get(name)
            rows.append([name, _blocks(removed[name]), *(ppl(row[s]) for s in sets), ppl(row["average"]),
                         f"{ppl(seeds['mean'])} ± {ppl(seeds['std'])}" if seeds else MISSING,
                         number(run["zeroshot"]["accuracy"][name]["average"], 3)])
    return markdown_table(header, rows)


def study_tables(run: dict) -> list[str]:
    """study.json as two tables: LoRP with K forced at every budget (RLS's own K marked), and per calibration draw
    the RLS, K, LoRP's plans with their Jaccard overlap with the default draw's, and their PPL."""
    study = run["study"]
    budgets, names = list(study["budgets"]), [plan_name("lorp", label) for label in study["budgets"]]
    cells = {(e["k"], e["label"]): e for e in study["k_sweep"]}
    ks = [[f"{k} (RLS)" if any(cells[k, label]["rls_k"] for label in budgets if (k, label) in cells) else str(k),
           *(f"{_blocks(cells[k, label]['blocks'])}: {ppl(cells[k, label]['ppl']['average'])}"
             if (k, label) in cells else MISSING for label in budgets)] for k in sorted({k for k, _ in cells})]
    draws = [[d["kind"], d["corpus"], str(d["n_samples"]), str(d["seed"]), number(d["rls"], 3), str(d["k"]),
              "; ".join(f"{n}: {_blocks(d['plans'][n])} ({number(d['jaccard'][n], 2)})" for n in names
                        if n in d["plans"]), " / ".join(ppl(d["ppl"].get(n, {}).get("average")) for n in names)]
             for d in study["draws"]]
    return [f"**{run['key']} study**: LoRP with K forced (average PPL):\n\n"
            + markdown_table(["K", *(f"{label}: blocks, PPL" for label in budgets)], ks),
            "Calibration draws (LoRP):\n\n" + markdown_table(["draw", "corpus", "windows", "seed", "RLS", "K",
                                                       "lorp plans (Jaccard vs default)", "lorp avg PPL"], draws)]


def model_block(run: dict) -> str:
    """One model's results: heading (blocks, RLS, K, clusters), dense line, plans, K sweep, draws, study's work."""
    rls, dense, study = run["rls"], run["ppl"]["ppl"]["dense"], run["study"]
    sets = ", ".join(f"{s} {ppl(dense[s])}" for s in run["ppl"]["eval_windows"])
    parts = [f"#### {run['key']}: {run['model_info']['num_blocks']} blocks, RLS {number(rls['rls'], 3)} -> "
             f"K = {rls['k']}; clusters {' '.join(_span(members) for members in run['clusters']['members'])}\n"
             f"dense: {sets}, average {ppl(dense['average'])}; zero-shot avg "
             f"{number(run['zeroshot']['accuracy']['dense']['average'], 3)}", plans_table(run)]
    parts += [recovery.markdown(run)] if run["recovery"] else []
    if study is None:
        return "\n\n".join([*parts, f"(reports/results/{run['key']}/study.json is not part of this run.)"])
    return "\n\n".join([*parts, *study_tables(run),
                        f"({run['key']}'s study: {study['evaluated']} block sets evaluated, {study['reused']} "
                        f"reused from the headline, {seconds(study['seconds']['total'])}.)"])


def _scored(run: dict) -> str:
    return ", ".join(t for t, n in run["zeroshot"]["examples"].items() if n)


def _skipped(runs: list[dict]) -> str:
    return ", ".join(sorted({t for run in runs for t in run["zeroshot"]["skipped"]}))


def setup_block(runs: list[dict]) -> str:
    """What the records measured: dtype, calibration, perplexity windows, zero-shot examples and their noise."""
    per_task = [v for run in runs for row in run["zeroshot"]["stderr"].values() for v in row.values() if v]
    windows = _same(runs, lambda r: " / ".join(sorted({f"{w['windows']} non-overlapping windows of {w['seqlen']} "
                                                       "tokens" for w in r["ppl"]["eval_windows"].values()})))
    return (f"Setup of the records below: {', '.join(run['key'] for run in runs)} in "
            + _same(runs, lambda r: f"{r['ppl']['dtype']} on {r['ppl']['device']}") + "; calibration "
            + _same(runs, lambda r: "{n_samples} × {seqlen} tokens of {corpus}".format(**r["calibration"]))
            + f"; perplexity on {windows} per set (" + _same(runs, lambda r: ", ".join(r["ppl"]["eval_windows"]))
            + "); zero-shot with lm-eval at **" + _same(runs, lambda r: f"{r['zeroshot']['limit']} examples per task")
            + "** over " + _same(runs, _scored) + (f" ({_skipped(runs)} skipped)" if _skipped(runs) else "")
            + f", a standard error of {value_range(per_task, 2)} per task (`zeroshot.json`'s `stderr`).")


def zeroshot_block(runs: list[dict]) -> str:
    """The zero-shot averages and what a paired test on the same examples (the report's rule, exact McNemar in
    lorp.report.conclusions) calls distinguishable: each plan against its dense model, each budget's best against
    its runner-up; the binomial standard error of one average says why so little is."""
    correct = conclusions.paired_correct
    n = {run["key"]: conclusions.examples_scored(run["zeroshot"]) for run in runs}
    dense = {run["key"]: run["zeroshot"]["accuracy"]["dense"]["average"] for run in runs}
    plans = [(run["key"], name, row["average"], conclusions.mcnemar_p(correct(run["zeroshot"], name),
                                                                      correct(run["zeroshot"], "dense")))
             for run in runs for name, row in run["zeroshot"]["accuracy"].items() if name != "dense"]
    claims = [c for run in runs for c in conclusions.model_claims(
        run["metrics"], run["study"], run["zeroshot"], run["model_info"]["num_blocks"], run["ppl"])
        if c["metric"] == "acc" and c["p_value"] is not None]
    alpha = conclusions.P_VALUE
    beyond = [f"{name} on {key} ({acc:.3f} against {dense[key]:.3f}, p = {p:.2g})"
              for key, name, acc, p in plans if p < alpha]
    ses = [conclusions.binomial_se(acc, n[key]) for key, _, acc, _ in plans] + [
        conclusions.binomial_se(acc, n[key]) for key, acc in dense.items()]
    clear = sum(c["distinguishable"] is True for c in claims) or "none"
    counts = _same(runs, lambda r: f"{len(_scored(r).split(', '))} tasks × {r['zeroshot']['limit']} examples")
    return (f"**Zero-shot** ({counts}" + (f"; {_skipped(runs)} skipped, `zeroshot.json` says why" if _skipped(runs)
                                          else "")
            + "): the dense models average " + " and ".join(f"{a:.3f} ({k})" for k, a in dense.items())
            + f"; every plan lies between {min(p[2] for p in plans):.3f} and {max(p[2] for p in plans):.3f}. With "
            + _same(runs, lambda r: str(n[r["key"]])) + " examples per average the binomial standard error of one "
            + f"average is {value_range(ses, 3)}. Plans are compared on the same examples (`zeroshot.json` keeps "
            + f"each example's correctness) by an exact McNemar test, distinguishable below p = {alpha:g}: each "
            + f"budget's best against its runner-up gives p = {value_range([c['p_value'] for c in claims], 2)} "
            + f"(distinguishable in {clear} of the {len(claims)} margins). Against the dense model (each of the "
            + f"{len(plans)} plans tested on its own, no correction for multiple comparisons), "
            + (" and ".join(beyond) + (" is" if len(beyond) == 1 else " are") + " distinguishable, and no other "
               + "plan is." if beyond else "no plan is distinguishable."))


def blocks(root: str | Path) -> dict[str, str]:
    """{block name: Markdown} of every generated block, from the records under root."""
    runs = [inputs.load(root, key) for key in model_keys(root)]
    loaded = [read_json(path) for run in runs if (path := Path(root) / LOADED.format(key=run["key"])).exists()]
    return {"setup": setup_block(runs), **{f"model-{run['key']}": model_block(run) for run in runs},
            "zeroshot": zeroshot_block(runs), "efficiency": efficiency_block(runs, loaded),
            "cost": cost_block(root, runs), "memory": memory_block(runs)}


def found(text: str) -> dict[str, str]:
    """{name: body} of the generated blocks in a README's text (body without its final newline)."""
    return {m["name"]: m["body"].removesuffix("\n") for m in MARKER.finditer(text)}


def rewrite(text: str, generated: dict[str, str]) -> tuple[str, list[str]]:
    """text with every generated block replaced, and the names of those whose content changed; refuses a README
    that lacks a block, has one twice or has one the records do not give."""
    names = [m["name"] for m in MARKER.finditer(text)]
    missing = [n for n in generated if n not in names]
    extra = sorted({n for n in names if n not in generated or names.count(n) > 1})
    if missing or extra:
        raise ReadmeError(f"README.md's generated blocks do not match the records': missing {missing}, unknown or "
                          f"repeated {extra} (a block is <!-- generated:NAME --> ... <!-- /generated:NAME -->)")
    changed = [n for n, body in found(text).items() if body != generated[n]]
    text = MARKER.sub(lambda m: f"<!-- generated:{m['name']} -->\n{generated[m['name']]}\n"
                                f"<!-- /generated:{m['name']} -->", text)
    return text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lorp.report.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 naming the blocks that differ")
    parser.add_argument("--root", default=".", help="the project root (default: .)")
    args = parser.parse_args(argv)
    path = Path(args.root) / README
    try:
        text, changed = rewrite(path.read_text(), blocks(args.root))
    except (LorpError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if changed and not args.check:
        write_text(path, text)
    print(f"{path}: " + ("up to date" if not changed else f"{', '.join(changed)} differ from the records (run make "
                         "readme)" if args.check else f"rewrote {', '.join(changed)}"))
    return 1 if changed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
