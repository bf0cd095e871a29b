"""The study grid of one model: extra calibration draws (seeds, sizes, corpora) and LoRP's K sweep, every plan
evaluated in memory on the dense model (exact, prefix-cached), distinct block sets once, headline plans reused."""

import argparse

import numpy as np

from lorp import params as P
from lorp.data import check_source
from lorp.io import read_json, write_json
from lorp.models import load_model, load_tokenizer
from lorp.perplexity import eval_windows
from lorp.stage import run
from lorp.study import run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("key", help="the model's key in params.yaml models")
    parser.add_argument("model", help="the dense checkpoint folder")
    for name in ("sources", "similarity", "rls", "clusters", "plans", "ppl", "out"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    params = P.load()
    spec, ev, cal, alloc, imp, study = (params.model(args.key), params.evaluate, params.calibration, params.allocate,
                                        params.importance, params.study)
    check_source(read_json(args.sources))
    s = np.load(args.similarity)
    budgets = P.model_budgets(params, args.key, len(s))
    for k in study.ks:
        P.check_force_k(k, len(s), where="study.ks")
    tokenizer = load_tokenizer(args.model)
    sets = {name: eval_windows(tokenizer, name, seqlen=ev.seqlen, max_windows=ev.max_windows) for name in ev.datasets}
    headline = {"s": s, "rls": read_json(args.rls), "labels": np.asarray(read_json(args.clusters)["labels"]),
                "plans": read_json(args.plans), "ppl": read_json(args.ppl)}
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    record = run_study(model, tokenizer, model_key=args.key, headline=headline, eval_sets=sets, budgets=budgets,
                       seeds=study.seeds, ks=study.ks, n_samples_grid=study.n_samples, corpora=study.corpora,
                       methods=study.methods, corpus=cal.corpus, n_samples=cal.n_samples, seqlen=cal.seqlen,
                       seed=cal.seed, similarity_batch_size=params.similarity.batch_size,
                       force_k=params.rls.force_k, cluster_random_state=params.cluster.random_state,
                       protect_first=alloc.protect_first, protect_last=alloc.protect_last, random_seed=alloc.seed,
                       importance_samples=imp.samples, importance_batch_size=imp.batch_size,
                       eval_batch_size=ev.batch_size)
    write_json(args.out, record)
    print({k: record[k] for k in ("evaluated", "reused", "seconds")})


if __name__ == "__main__":
    run(main)
