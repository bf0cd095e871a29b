"""The report's figures. Each function returns a matplotlib Figure built without pyplot (so a notebook shows it
once, where the report places it); figure_html embeds it as a captioned PNG that scales to the page."""

import base64
import html
import io
from collections.abc import Iterator

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from lorp.report import conclusions
from lorp.report.formats import factor
from lorp.select.methods import NAMES, plan_name

DPI = 110
PAGE_PX = 1180  # the report's content width at a 1280 px window: wider figures are scaled down to it
MIN_TEXT_PX = 8  # the smallest text a figure may show at that width (tests/test_report.py checks every figure)


def colour(method: str) -> str:
    """One colour per method in every figure."""
    return f"C{_method_order(method)}"


def _method_order(method: str) -> int:
    return NAMES.index(method) if method in NAMES else len(NAMES)


def figure_html(fig: Figure, numbers: Iterator[int], caption: str) -> str:
    """fig as an embedded PNG with a numbered caption; the figure is closed (not kept in memory)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    data = base64.b64encode(buffer.getvalue()).decode()
    return (f'<figure class="lorp"><img src="data:image/png;base64,{data}" alt="figure">'
            f"<figcaption><b>Figure {next(numbers)}.</b> {html.escape(caption)}</figcaption></figure>")


def smallest_text_px(fig: Figure, page_px: int = PAGE_PX) -> float:
    """The height in screen pixels of the figure's smallest visible text when the report shows it at page_px."""
    fig.canvas.draw()  # lays out ticks and labels
    scale = min(1.0, page_px / (fig.get_figwidth() * DPI))
    texts = fig.findobj(match=lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize"))
    sizes = [t.get_fontsize() for t in texts if t.get_visible() and t.get_text().strip()]
    return min(sizes) * DPI / 72 * scale if sizes else float("inf")


def _cluster_strip(ax, labels: np.ndarray) -> None:
    ax.imshow(labels[None, :], cmap="tab10", aspect="auto", vmin=0, vmax=9, interpolation="nearest")
    for b, k in enumerate(labels):
        ax.text(b, 0, str(k), ha="center", va="center", fontsize=7, color="white")
    ax.set_yticks([0], ["cluster"])


def similarity_heatmap(similarity: np.ndarray, labels: list[int], title: str) -> Figure:
    """S with dashed lines at the cluster boundaries."""
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(similarity, cmap="viridis", vmin=min(0.0, float(similarity.min())), vmax=1)
    for b in np.flatnonzero(np.diff(labels)) + 0.5:
        ax.axhline(b, color="w", ls="--", lw=0.9)
        ax.axvline(b, color="w", ls="--", lw=0.9)
    ax.set_xlabel("block j (input)")
    ax.set_ylabel("block i (input)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.85, label="cosine similarity")
    return fig


def decay_curves(runs: list[dict]) -> Figure:
    """Mean similarity against normalised block distance, one line per model, RLS and K in the legend."""
    fig = Figure(figsize=(6.8, 3.6), layout="constrained")
    ax = fig.subplots()
    for run in runs:
        x = [row["normalised_distance"] for row in run["decay"]]
        y = [row["mean_similarity"] for row in run["decay"]]
        rls = run["rls"]["rls"]
        ax.plot(x, y, marker="o", ms=3, label=f"{run['key']} (N = {run['rls']['num_blocks']}, "
                f"RLS = {'undefined' if rls is None else f'{rls:.3f}'}, K = {run['rls']['k']})")
    ax.set_xlabel("block distance / (N − 1)")
    ax.set_ylabel("mean S at that distance")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _plan_rows(plans: list[dict]) -> list[dict]:
    """Plans grouped by budget, then by method order."""
    return sorted(plans, key=lambda p: (p["budget"], _method_order(p["method"])))


def block_importance(importance: dict, clusters: dict, plans: list[dict]) -> Figure:
    """Single-block ablation under the cluster strip, LoRP's member redundancy and its Stage-1/2 choices at the
    largest budget, and every plan's removed blocks on the same block axis."""
    labels = np.array(clusters["labels"])
    n = len(labels)
    ablation = np.array([np.nan if v is None else v for v in importance["ablation_ppl"]], dtype=float)
    rows = _plan_rows(plans)
    fig = Figure(figsize=(max(7.5, 0.3 * n), 4.8 + 0.2 * len(rows)), layout="constrained")
    strip, curve, removed = fig.subplots(3, 1, sharex=True,
                                         gridspec_kw={"height_ratios": [0.35, 3, 0.22 * len(rows) + 0.3]})
    _cluster_strip(strip, labels)
    curve.semilogy(range(n), ablation, marker="o", ms=3, color="k", label="PPL with the block removed alone")
    curve.axhline(importance["dense_ppl"], color="grey", ls="--", lw=1, label="dense")
    curve.set_ylabel("calibration PPL (log)")
    lorp = [p for p in plans if p["method"] == "lorp"]
    if lorp:
        top = max(lorp, key=lambda p: p["budget"])
        redundancy = np.array([v if np.isfinite(v) else np.nan for v in top["scores"]["member_redundancy"]])
        twin = curve.twinx()
        twin.plot(range(n), redundancy, color=colour("lorp"), alpha=0.6, lw=1.2)
        twin.set_ylabel("LoRP member redundancy r(l)", color=colour("lorp"))
        for step in top["scores"]["steps"]:
            b = step["block"]
            y = ablation[b] if np.isfinite(ablation[b]) else importance["dense_ppl"]
            curve.plot(b, y, "^" if step["stage"] == 1 else "v", color="C2" if step["stage"] == 1 else "C1",
                       ms=9, label=f"LoRP Stage {step['stage']} ({top['name']})")
    handles = dict(zip(*reversed(curve.get_legend_handles_labels()), strict=True))
    curve.legend(handles.values(), handles.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.09, 1.0))
    for row, plan in enumerate(rows):
        removed.scatter(plan["removed"], [row] * len(plan["removed"]), s=16, color=colour(plan["method"]))
    removed.set_yticks(range(len(rows)), [p["name"] for p in rows], fontsize=7)
    removed.set_ylim(len(rows) - 0.5, -0.5)
    removed.set_xticks(range(n))
    removed.tick_params(axis="x", labelsize=7)
    removed.set_xlabel("block")
    removed.grid(axis="x", alpha=0.3)
    return fig


def marginal_costs(marginal: dict, plans: list[dict], num_blocks: int) -> Figure:
    """Each plan's blocks removed one by one in the method's order: the factor by which each removal multiplies
    calibration perplexity, placed on the block axis (log colour scale; red = harm)."""
    rows = [p for p in _plan_rows(plans) if p["name"] in marginal["plans"]]
    grid = np.full((len(rows), num_blocks), np.nan)
    for r, plan in enumerate(rows):
        for block, step in conclusions.step_factors(marginal, plan["name"]):
            grid[r, block] = np.log10(step)
    fig = Figure(figsize=(max(7.5, 0.3 * num_blocks), 1.2 + 0.26 * len(rows)), layout="constrained")
    ax = fig.subplots()
    limit = max(1.0, float(np.nanmax(np.abs(grid))))
    image = ax.imshow(grid, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=0, vmin=-limit, vmax=limit), aspect="auto")
    for r, c in np.argwhere(np.abs(np.nan_to_num(grid)) > np.log10(1.5)):
        ax.text(c, r, factor(10 ** grid[r, c]), ha="center", va="center", fontsize=6,
                color="w" if abs(grid[r, c]) > 0.6 * limit else "k")
    ax.set_yticks(range(len(rows)), [p["name"] for p in rows], fontsize=7)
    ax.set_xticks(range(num_blocks))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("removed block")
    fig.colorbar(image, ax=ax, shrink=0.9, label="log10 PPL factor of the step")
    return fig


def ppl_vs_budget(metrics: dict) -> Figure:
    """Average PPL against blocks removed per method: the default draw (markers joined by a line) and the mean ± sd
    over the calibration draws (error bar at the same place) where the study measured it. Each method sits at its
    own small offset, so identical plans of two methods stay visible side by side."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    names = conclusions.methods(metrics)
    blocks = sorted({row["blocks"] for m in names for row in metrics[m].values()})
    step = 0.5 * min((b - a for a, b in zip(blocks, blocks[1:], strict=False)), default=1) / max(1, len(names))
    for i, method in enumerate(names):
        rows = sorted(metrics[method].values(), key=lambda r: r["blocks"])
        x = [r["blocks"] + (i - (len(names) - 1) / 2) * step for r in rows]
        ax.plot(x, [r["ppl"] for r in rows], marker="os^vD<>ph*"[i % 10], ms=5, color=colour(method), label=method)
        seeded = [(xi, r) for xi, r in zip(x, rows, strict=True) if r.get("ppl_std") is not None]
        if seeded:
            mean = np.array([r["ppl_mean"] for _, r in seeded])
            sd = np.array([r["ppl_std"] for _, r in seeded])
            ax.errorbar([xi for xi, _ in seeded], mean, yerr=[np.minimum(sd, 0.99 * mean), sd], fmt="none",
                        ecolor=colour(method), capsize=3, lw=1)
    ax.set_xticks(blocks)
    ax.margins(x=0.08)
    ax.axhline(metrics["dense"]["ppl"], color="k", ls="--", lw=1, label="dense")
    ax.set_yscale("log")
    ax.set_xlabel("blocks removed")
    ax.set_ylabel("average PPL (log)")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")
    return fig


def k_ablation(k_sweep: list[dict]) -> Figure:
    """LoRP's average PPL with K forced, per budget; the K the RLS policy picks is starred."""
    fig = Figure(figsize=(6.0, 3.5), layout="constrained")
    ax = fig.subplots()
    for i, label in enumerate(sorted({row["label"] for row in k_sweep})):
        rows = sorted((r for r in k_sweep if r["label"] == label), key=lambda r: r["k"])
        ax.plot([r["k"] for r in rows], [r["ppl"]["average"] for r in rows], marker="o", color=f"C{i}", label=label)
        for r in rows:
            if r["rls_k"]:
                ax.plot(r["k"], r["ppl"]["average"], "*", ms=16, color=f"C{i}", mec="k")
    ax.plot([], [], "*", ms=12, color="w", mec="k", label="K chosen by RLS")
    ax.set_yscale("log")
    ax.set_xlabel("K (clusters, forced)")
    ax.set_ylabel("LoRP average PPL (log)")
    ax.set_xticks(sorted({r["k"] for r in k_sweep}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _draw_name(draw: dict) -> str:
    """A short name for a calibration draw: what differs from the default."""
    return {"default": f"default\n{draw['corpus']}·{draw['n_samples']}·s{draw['seed']}",
            "seed": f"seed {draw['seed']}", "size": f"n = {draw['n_samples']}", "corpus": draw["corpus"]}[draw["kind"]]


def calibration_draws(study: dict, budget_labels: list[str]) -> Figure:
    """Per calibration draw: RLS (K on the bar), the Jaccard of LoRP's plan with the default draw's, and LoRP's
    average PPL, per budget."""
    draws = study["draws"]
    names = [_draw_name(d) for d in draws]
    x = np.arange(len(draws))
    width = 0.8 / max(1, len(budget_labels))
    fig = Figure(figsize=(7.5, 7.2), layout="constrained")
    rls_ax, jaccard_ax, ppl_ax = fig.subplots(3, 1, sharex=True)
    bars = rls_ax.bar(x, [np.nan if d["rls"] is None else d["rls"] for d in draws], color="grey")
    rls_ax.bar_label(bars, [f"K={d['k']}" for d in draws], fontsize=8)
    rls_ax.set_ylabel("RLS")
    rls_ax.margins(y=0.2)
    for i, label in enumerate(budget_labels):
        name, offset = plan_name("lorp", label), (i - (len(budget_labels) - 1) / 2) * width
        jaccard_ax.bar(x + offset, [d["jaccard"].get(name, np.nan) for d in draws], width, label=label)
        ppl_ax.plot(x + offset, [d["ppl"].get(name, {}).get("average", np.nan) for d in draws], "o", label=label)
    jaccard_ax.set_ylabel("Jaccard vs default plan")
    jaccard_ax.set_ylim(0, 1.05)
    jaccard_ax.legend(fontsize=8, title="budget", title_fontsize=8, loc="lower right")
    ppl_ax.set_yscale("log")
    ppl_ax.set_ylabel("LoRP average PPL (log)")
    ppl_ax.set_xticks(x, names, fontsize=8)
    for ax in (rls_ax, jaccard_ax, ppl_ax):
        ax.grid(axis="y", alpha=0.3)
    return fig


def speedups(runs: list[dict]) -> Figure:
    """Measured prefill and decode speed-ups per distinct pruned architecture (plans of one architecture share one
    timing: its bar names them), the median of paired ratios with its 95 % interval, against the ideal FLOP
    ratio, one panel per model."""
    fig = Figure(figsize=(9.5, 3.4 * len(runs)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(runs), 1))
    for ax, run in zip(axes, runs, strict=True):
        timed: dict[str, list[str]] = {}
        for name, b in run["bench"]["models"].items():
            if name != "dense":
                timed.setdefault(b.get("measured_as", name), []).append(name)
        rows = [run["bench"]["models"][name] for name in timed]
        x = np.arange(len(rows))
        top = 1.0
        for offset, kind in ((-0.2, "prefill"), (0.2, "decode")):
            values = np.array([b[f"{kind}_speedup"] for b in rows])
            lo, hi = (np.array([b.get(f"{kind}_ci", [v, v])[i] for b, v in zip(rows, values, strict=True)])
                      for i in (0, 1))
            ax.bar(x + offset, values, 0.4, yerr=[values - lo, hi - values], capsize=3, label=f"measured {kind}",
                   color="C0" if kind == "prefill" else "C1", alpha=0.8)
            top = max(top, float(np.max(hi, initial=1.0)))
        ideal = [b["ideal_speedup"] for b in rows]
        ax.scatter(x, ideal, marker="_", s=400, color="k", zorder=3, label="ideal (FLOP ratio)")
        ax.axhline(1, color="grey", lw=0.8)
        ax.set_ylim(0, 1.15 * max(top, *ideal))
        names = [f"{len(plans)} plans: {plans[0]}, …" if len(plans) > 2 else ", ".join(plans)
                 for plans in timed.values()]
        ax.set_xticks(x, names, fontsize=8, rotation=20, ha="right")
        ax.set_ylabel("speed-up ×")
        ax.set_title(run["key"], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncols=3, loc="outside upper center")
    return fig
