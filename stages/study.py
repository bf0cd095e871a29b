"""The study grid of one model: extra calibration draws (seeds, sizes, corpora) and LoRP's K sweep, every plan
evaluated in memory on the dense model (exact, prefix-cached), distinct block sets once, headline plans reused."""


import numpy as np

from lorp.data.sources import check_source, mirror_root
from lorp.evaluate.perplexity import eval_windows
from lorp.io import read_json
from lorp.model.load import load_model, load_tokenizer
from lorp.params.config import load, model_budgets
from lorp.stage import model_parser, run, write_record
from lorp.study import run_study


def main() -> None:
    parser = model_parser(__doc__, sources="", similarity="", rls="", clusters="", plans="", ppl="", out="")
    args = parser.parse_args()

    params = load()
    spec, ev = params.model(args.key), params.evaluate
    mirror = mirror_root(params.data.mirror)
    check_source(read_json(args.sources), mirror)
    s = np.load(args.similarity)
    budgets = model_budgets(params, args.key, len(s))
    tokenizer = load_tokenizer(args.model)
    sets = {name: eval_windows(tokenizer, name, seqlen=ev.seqlen, max_windows=ev.max_windows, mirror=mirror)
            for name in ev.datasets}
    headline = {"s": s, "rls": read_json(args.rls), "labels": np.asarray(read_json(args.clusters)["labels"]),
                "plans": read_json(args.plans), "ppl": read_json(args.ppl)}
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    record = run_study(model, tokenizer, model_key=args.key, headline=headline, eval_sets=sets, budgets=budgets,
                       params=params, mirror=mirror)
    write_record(args.out, record)
    print({k: record[k] for k in ("evaluated", "reused", "seconds")})


if __name__ == "__main__":
    run(main)
