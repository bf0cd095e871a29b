"""The evaluation-sample noise of a perplexity: a bootstrap over the evaluation windows, from the per-window losses
ppl.json keeps (no forward pass). Resampling the same windows for two plans gives a paired interval of their
difference, which is what a margin between two plans should be judged against."""

import numpy as np

DRAWS = 2000
SEED = 0


def _draws(record: dict) -> dict[str, np.ndarray]:
    """{dataset: (DRAWS, windows) indices}, the same for every plan of the record (seeded)."""
    rng = np.random.default_rng(SEED)
    return {ds: rng.integers(0, w["windows"], size=(DRAWS, w["windows"])) for ds, w in record["eval_windows"].items()}


def average_ppl_draws(record: dict, name: str, draws: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The plan's average PPL (mean over datasets, as ppl.json's average) on each bootstrap resample of windows."""
    draws = draws or _draws(record)
    per_dataset = []
    for ds, w in record["eval_windows"].items():
        nll = np.asarray(record["window_nll"][name][ds], dtype=float)
        per_dataset.append(np.exp(nll[draws[ds]].sum(axis=1) / (w["windows"] * (w["seqlen"] - 1))))
    return np.mean(per_dataset, axis=0)


def ppl_interval(record: dict, name: str) -> tuple[float, float]:
    """The 95 % evaluation-sample interval of the plan's average PPL."""
    lo, hi = np.percentile(average_ppl_draws(record, name), [2.5, 97.5])
    return float(lo), float(hi)


def margin_interval(record: dict, better: str, worse: str) -> tuple[float, float]:
    """The 95 % paired interval of PPL(worse) - PPL(better) over the same resampled windows."""
    draws = _draws(record)
    diff = average_ppl_draws(record, worse, draws) - average_ppl_draws(record, better, draws)
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return float(lo), float(hi)
