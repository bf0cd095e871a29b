"""Efficiency benchmark: size, memory, prefill/decode throughput of the dense model and every distinct plan."""

import dataclasses

from lorp.evaluate.bench import benchmark_plans, selection_cost, write_results
from lorp.io import read_json
from lorp.model.checkpoints import checkpoints
from lorp.model.load import load_config, max_positions
from lorp.params.config import check_seqlen, load
from lorp.select.methods import split_plan_name
from lorp.stage import model_parser, run


def main() -> None:
    parser = model_parser(__doc__, pruned="the prune stage's folder (index.json + checkpoints)",
                          out="results JSON to write", timing="the similarity pass's timing.json", csv="")
    args = parser.parse_args()

    params = load()
    b, spec = params.bench, params.model(args.key)
    limit = max_positions(load_config(args.model))
    check_seqlen("bench.seqlen", b.seqlen, limit)
    check_seqlen("bench.prompt_len + bench.new_tokens", b.prompt_len + b.new_tokens + 1, limit)
    models = checkpoints(args.model, args.pruned)
    rows = benchmark_plans(models, dtype=spec.dtype, device=spec.device, **dataclasses.asdict(b))
    methods = sorted({split_plan_name(name)[0] for name in models if name != "dense"})
    write_results(rows, args.out, args.csv, selection_cost(read_json(args.timing), methods))
    for r in rows:
        print(f"{r['name']:>14}: {r['blocks']} blocks, prefill x{r['prefill_speedup']:.2f}, "
              f"decode x{r['decode_speedup']:.2f}, ideal x{r['ideal_speedup']:.2f}")


if __name__ == "__main__":
    run(main)
