"""Zero-shot accuracy (lm-evaluation-harness, 0-shot) of the dense model and every pruned checkpoint."""

import time

from lorp import params as P
from lorp.checkpoints import checkpoints, evaluate_each
from lorp.data import check_source
from lorp.io import library_versions, read_json, write_json
from lorp.models import load_tokenizer
from lorp.stage import checkpoint_parser, run
from lorp.zeroshot import evaluate


def main() -> None:
    parser = checkpoint_parser(__doc__)
    parser.add_argument("--sources", required=True, help="locate_data's record of the dataset source")
    args = parser.parse_args()
    start = time.perf_counter()
    params = P.load()
    zs, model = params.zeroshot, params.model(args.key)
    check_source(read_json(args.sources))
    tokenizer = load_tokenizer(args.model)
    results = evaluate_each(checkpoints(args.model, args.pruned), dtype=model.dtype, device=model.device,
                            fn=lambda m: evaluate(m, tokenizer, tasks=zs.tasks, limit=zs.limit,
                                                  batch_size=zs.batch_size))
    accuracy, stderr, skipped = {}, {}, {}
    for name, result in results.items():
        tasks = result["tasks"]
        accuracy[name] = {t: r["value"] for t, r in tasks.items() if "value" in r} | {"average": result["average"]}
        stderr[name] = {t: r["stderr"] for t, r in tasks.items() if "value" in r}
        skipped |= {t: r["skipped"] for t, r in tasks.items() if "skipped" in r}
        print(name, {t: round(v, 3) for t, v in accuracy[name].items()})
    examples = {t: r.get("n") for t, r in next(iter(results.values()))["tasks"].items()}
    write_json(args.out, {"accuracy": accuracy, "stderr": stderr, "skipped": skipped, "limit": zs.limit,
                          "examples": examples, "seconds": round(time.perf_counter() - start, 1),
                          "dtype": model.dtype, "device": model.device, "versions": library_versions()})


if __name__ == "__main__":
    run(main)
