"""Zero-shot accuracy (lm-evaluation-harness, 0-shot) of the dense model and every plan, in memory.

Each plan runs the dense model with its blocks bypassed (exact: the prune stage proves each checkpoint equals
this), resuming at its first removed block from the dense run's recorded inputs; identical plans are scored once. A
recovered plan runs the same way with the weights its recovery changed in place (read from its checkpoint).
"""

import time

from lorp.data.sources import check_source, mirror_root
from lorp.evaluate.zeroshot import evaluate_plans, zeroshot_record
from lorp.io import read_json
from lorp.model.load import load_model, load_tokenizer
from lorp.params.config import load
from lorp.recover.plans import load_recovered
from lorp.stage import model_parser, run, write_record


def main() -> None:
    parser = model_parser(__doc__, plans="", recovered="the recover stage's folder (index.json + checkpoints)",
                          sources="locate_data's record of the dataset source", out="")
    args = parser.parse_args()
    start = time.perf_counter()
    params = load()
    zs, spec = params.zeroshot, params.model(args.key)
    mirror = mirror_root(params.data.mirror)
    check_source(read_json(args.sources), mirror)
    plans = {"dense": []} | {p["name"]: p["removed"] for p in read_json(args.plans)}
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    recovered, patches = load_recovered(model, args.recovered, dtype=spec.dtype)
    results = evaluate_plans(model, tokenizer, plans | recovered, tasks=zs.tasks, limit=zs.limit,
                             batch_size=zs.batch_size, mirror=mirror, patches=patches)
    write_record(args.out, zeroshot_record(results, limit=zs.limit, dtype=spec.dtype, device=spec.device, start=start))


if __name__ == "__main__":
    run(main)
