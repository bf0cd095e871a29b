"""Block importance from calibration loss: the single-block ablation curve (oneshot_ppl) and SLEB's greedy order."""


import numpy as np

from lorp.data.calibration import check_fingerprint
from lorp.io import read_json
from lorp.model.load import load_model, load_tokenizer
from lorp.params.config import load, loss_windows, model_budgets
from lorp.select.importance import block_importance
from lorp.stage import model_parser, run, write_record


def main() -> None:
    parser = model_parser(__doc__, windows="", calibration_info="", out="")
    args = parser.parse_args()

    params = load()
    imp, alloc, spec = params.importance, params.allocate, params.model(args.key)
    check_fingerprint(read_json(args.calibration_info), load_tokenizer(args.model))
    ids = loss_windows(np.load(args.windows), imp.samples)
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    budgets = model_budgets(params, args.key, model.config.get_text_config().num_hidden_layers)
    record = block_importance(model, ids, sleb_rounds=max(budgets.values()) if "sleb" in alloc.methods else 0,
                              batch_size=imp.batch_size, protect_first=alloc.protect_first,
                              protect_last=alloc.protect_last)
    write_record(args.out, record)
    print({k: v for k, v in record.items() if k in ("dense_ppl", "sleb_order", "seconds")})


if __name__ == "__main__":
    run(main)
