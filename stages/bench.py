"""Efficiency benchmark: size, memory, prefill/decode throughput of the dense model and every plan, and the speed-up
of the loss-based scoring's cached prefix states over the naive loop."""

import dataclasses
from pathlib import Path

import numpy as np

from lorp import params as P
from lorp.allocate import protected_blocks
from lorp.bench import benchmark, selection_cost, write_results
from lorp.checkpoints import checkpoints
from lorp.importance import speedup_benchmark
from lorp.io import read_json
from lorp.models import load_config, load_model, max_positions
from lorp.stage import checkpoint_parser, run


def main() -> None:
    parser = checkpoint_parser(__doc__)
    parser.add_argument("--timing", required=True, help="the similarity pass's timing.json")
    parser.add_argument("--windows", required=True, help="calibration windows, for the importance speed-up")
    parser.add_argument("--csv", required=True)
    args = parser.parse_args()

    params = P.load()
    b, model, imp, alloc = params.bench, params.model, params.importance, params.allocate
    config = load_config(args.model)
    limit = max_positions(config)
    P.check_seqlen("bench.seqlen", b.seqlen, limit)
    P.check_seqlen("bench.prompt_len + bench.new_tokens", b.prompt_len + b.new_tokens + 1, limit)
    ids = P.loss_windows(np.load(args.windows), imp.samples)
    folders = [(name, path) for name, (path, _) in checkpoints(args.model, args.pruned).items()]
    rows = benchmark(folders, dtype=model.dtype, device=model.device, **dataclasses.asdict(b))
    dense = load_model(args.model, dtype=model.dtype, device=model.device)
    protected = protected_blocks(config.num_hidden_layers, alloc.protect_first, alloc.protect_last)
    speedup = speedup_benchmark(dense, ids, batch_size=imp.batch_size, protected=protected)
    methods = sorted({r["method"] for r in read_json(Path(args.pruned) / "index.json").values()})
    write_results(rows, args.out, args.csv, selection_cost(read_json(args.timing), methods), speedup)
    for r in rows:
        print(f"{r['name']:>14}: {r['blocks']} blocks, prefill x{r['prefill_speedup']:.2f}, "
              f"decode x{r['decode_speedup']:.2f}, ideal x{r['ideal_speedup']:.2f}")
    print("importance scoring, cached vs naive:", speedup)


if __name__ == "__main__":
    run(main)
