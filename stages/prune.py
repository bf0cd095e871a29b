"""Stage 7: write every plan as a reloadable checkpoint, checked against the skip-blocks original."""


from lorp.io import library_versions, read_json
from lorp.model.load import load_model, load_tokenizer
from lorp.model.prune import prune_all
from lorp.params.config import load
from lorp.stage import model_parser, run


def main() -> None:
    parser = model_parser(__doc__, plans="", out="")
    args = parser.parse_args()

    dtype = load().model(args.key).dtype
    original = load_model(args.model, dtype=dtype, device="cpu")
    index = prune_all(original, load_tokenizer(args.model), read_json(args.plans), args.out,
                      provenance={"dtype": dtype, "device": "cpu", "versions": library_versions()})
    for name, record in index.items():
        print(f"{name}: {len(record['kept'])} blocks kept, max |logit diff| vs skip-blocks = "
              f"{record['max_abs_logit_diff_vs_skip']:.2e}")


if __name__ == "__main__":
    run(main)
