"""Stage 3: one forward pass over the calibration windows -> the N x N block similarity S and angular distance A."""


import numpy as np

from lorp.data.calibration import check_fingerprint
from lorp.io import read_json, write_npy
from lorp.model.load import load_model, load_tokenizer
from lorp.params.config import load
from lorp.select.similarity import block_input_similarity
from lorp.stage import model_parser, run, write_record


def main() -> None:
    parser = model_parser(__doc__, windows="", calibration_info="",
                          out="S (.npy): token-mean cosine between block inputs",
                          angular="A (.npy): last-token angular distance between block inputs", timing="")
    args = parser.parse_args()

    params = load()
    spec = params.model(args.key)
    check_fingerprint(read_json(args.calibration_info), load_tokenizer(args.model))
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    result = block_input_similarity(model, np.load(args.windows), batch_size=params.similarity.batch_size)
    write_npy(args.out, result.s)
    write_npy(args.angular, result.angular)
    write_record(args.timing, result.timing)
    print(result.timing)


if __name__ == "__main__":
    run(main)
