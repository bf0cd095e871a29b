"""The LoRP variants that select with the model in the loop (lorp_iter, lorp_kcal) among allocate.methods, each at
every budget: the variants record the allocate stage reads. An empty record when allocate.methods has none."""


import numpy as np

from lorp.data.calibration import check_fingerprint
from lorp.io import read_json
from lorp.model.load import load_model, load_tokenizer
from lorp.params.config import load, loss_windows, model_budgets
from lorp.select.methods import BY_MODEL
from lorp.select.variants import variants_record
from lorp.stage import model_parser, run, write_record


def main() -> None:
    parser = model_parser(__doc__, windows="", calibration_info="",
                          similarity="S.npy: lorp_iter's first step and lorp_kcal's S", out="")
    args = parser.parse_args()

    params = load()
    alloc, imp, spec = params.allocate, params.importance, params.model(args.key)
    methods = [m for m in alloc.methods if m in BY_MODEL]
    record = {}
    if methods:
        check_fingerprint(read_json(args.calibration_info), load_tokenizer(args.model))
        s, ids = np.load(args.similarity), np.load(args.windows)
        budgets = model_budgets(params, args.key, len(s))
        model = load_model(args.model, dtype=spec.dtype, device=spec.device)
        record = variants_record(model, ids, loss_windows(ids, imp.samples), s, methods=methods,
                                 budgets=list(budgets.values()), ks=params.study.ks, force_k=params.rls.force_k,
                                 random_state=params.cluster.random_state, protect_first=alloc.protect_first,
                                 protect_last=alloc.protect_last, similarity_batch_size=params.similarity.batch_size,
                                 loss_batch_size=imp.batch_size)
    write_record(args.out, record)
    for name, result in record.items():
        print(f"{name}: {({n: p['removed'] for n, p in result['plans'].items()})} in {result['seconds']} s")


if __name__ == "__main__":
    run(main)
