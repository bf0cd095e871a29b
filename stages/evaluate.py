"""Stage 8: perplexity of the dense model and every pruned checkpoint on the evaluation sets."""

import time

from lorp import params as P
from lorp.checkpoints import checkpoints, evaluate_each
from lorp.io import library_versions, write_json
from lorp.models import load_config, load_tokenizer, max_positions
from lorp.perplexity import eval_windows, perplexity
from lorp.stage import checkpoint_parser, run


def main() -> None:
    args = checkpoint_parser(__doc__).parse_args()
    start = time.perf_counter()
    params = P.load()
    ev, model = params.evaluate, params.model
    P.check_seqlen("evaluate.seqlen", ev.seqlen, max_positions(load_config(args.model)))
    tokenizer = load_tokenizer(args.model)
    sets = {name: eval_windows(tokenizer, name, seqlen=ev.seqlen, max_windows=ev.max_windows) for name in ev.datasets}
    models = checkpoints(args.model, args.pruned)
    scores = evaluate_each(models, dtype=model.dtype, device=model.device, fn=lambda m: {
        ds: perplexity(m, ids, batch_size=ev.batch_size, desc=ds)["ppl"] for ds, ids in sets.items()})
    results = {}
    for name, row in scores.items():
        results[name] = row | {"average": sum(row.values()) / len(row), "removed": len(models[name][1])}
        print(name, {k: round(v, 3) for k, v in results[name].items()})
    windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in sets.items()}
    write_json(args.out, {"ppl": results, "eval_windows": windows, "seconds": round(time.perf_counter() - start, 1),
                          "dtype": model.dtype, "device": model.device, "versions": library_versions()})


if __name__ == "__main__":
    run(main)
