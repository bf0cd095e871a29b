"""The calibration-PPL cost of each block of every plan, removed one at a time in the order the method chose them."""


import numpy as np

from lorp.io import read_json
from lorp.model.load import load_model
from lorp.params.config import load, loss_windows
from lorp.select.importance import plan_costs
from lorp.stage import model_parser, run, write_record


def main() -> None:
    parser = model_parser(__doc__, windows="", plans="", out="")
    args = parser.parse_args()

    params = load()
    imp, spec = params.importance, params.model(args.key)
    ids = loss_windows(np.load(args.windows), imp.samples)
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    record = plan_costs(model, ids, plans=read_json(args.plans), batch_size=imp.batch_size)
    write_record(args.out, record)
    for name, row in record["plans"].items():
        print(f"{name:>16}: order {row['order']}, PPL {[round(p, 1) for p in row['ppl']]}")


if __name__ == "__main__":
    run(main)
