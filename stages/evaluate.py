"""Perplexity of the dense model and every plan on the evaluation sets, in memory and prefix-cached.

Each plan runs the dense model with its blocks bypassed, resuming at its first removed block from the dense
pass's recorded states: exact (the prune stage proves each checkpoint equals this), and identical plans are
scored once. A recovered plan runs the same way with the weights its recovery changed in place (read from its
checkpoint). The loss never holds more than a slice of the logits (Gemma-3's vocabulary is 262k).
"""

import time

from lorp.data.sources import check_source, mirror_root
from lorp.evaluate.perplexity import eval_windows, ppl_record
from lorp.io import read_json, write_json
from lorp.model.load import load_config, load_model, load_tokenizer, max_positions
from lorp.model.memory import free_memory
from lorp.params.config import check_seqlen, load
from lorp.recover.plans import load_recovered
from lorp.stage import model_parser, run


def main() -> None:
    parser = model_parser(__doc__, plans="", recovered="the recover stage's folder (index.json + checkpoints)",
                          sources="locate_data's record of the dataset source", out="")
    args = parser.parse_args()

    start = time.perf_counter()
    params = load()
    ev, spec = params.evaluate, params.model(args.key)
    check_seqlen("evaluate.seqlen", ev.seqlen, max_positions(load_config(args.model)))
    mirror = mirror_root(params.data.mirror)
    check_source(read_json(args.sources), mirror)
    tokenizer = load_tokenizer(args.model)
    sets = {name: eval_windows(tokenizer, name, seqlen=ev.seqlen, max_windows=ev.max_windows, mirror=mirror)
            for name in ev.datasets}
    del tokenizer  # Gemma-3's holds ~320 MB that the model's forward would otherwise stack its peak on
    free_memory()
    plans = {"dense": []} | {p["name"]: p["removed"] for p in read_json(args.plans)}
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    recovered, patches = load_recovered(model, args.recovered, dtype=spec.dtype)
    write_json(args.out, ppl_record(model, sets, plans | recovered, batch_size=ev.batch_size, dtype=spec.dtype,
                                    device=spec.device, start=start, patches=patches))


if __name__ == "__main__":
    run(main)
