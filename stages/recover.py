"""Stage 8: recover every plan (linear replacement, training-free) and heal the chosen ones (LoRA), as checkpoints."""

import time

import numpy as np

from lorp.data.calibration import check_fingerprint, sample
from lorp.data.sources import check_source, mirror_root
from lorp.io import library_versions, read_json
from lorp.model.load import load_model, load_tokenizer
from lorp.params.config import load, loss_windows
from lorp.recover.plans import recover_all
from lorp.recover.recoveries import lora_plans
from lorp.stage import model_parser, run, write_record


def main() -> None:
    parser = model_parser(__doc__, plans="", windows="the calibration windows the linear maps are fitted on",
                          calibration_info="", marginal="marginal_cost's record: each plan's calibration PPL",
                          sources="locate_data's record of the dataset source",
                          out="the folder of recovered checkpoints (+ index.json)",
                          record="the same index, as a results JSON for the report")
    args = parser.parse_args()

    start = time.perf_counter()
    params = load()
    rec, spec, cal = params.recovery, params.model(args.key), params.calibration
    plans = read_json(args.plans)
    tokenizer = load_tokenizer(args.model)
    check_fingerprint(read_json(args.calibration_info), tokenizer)
    linear_ids = loss_windows(np.load(args.windows), rec.linear_samples) if "linear" in rec.methods else None
    healed, lora_ids = [], None
    if "lora" in rec.methods:
        calibration_ppl = {name: row["ppl"][-1] for name, row in read_json(args.marginal)["plans"].items()}
        healed = lora_plans(plans, calibration_ppl, rec.lora_methods, rec.lora_budgets)
        mirror = mirror_root(params.data.mirror)
        check_source(read_json(args.sources), mirror)
        lora_ids, _ = sample(tokenizer, cal.corpus, rec.lora_steps * rec.lora_batch_size, rec.lora_seqlen,
                             rec.lora_seed, mirror)
    model = load_model(args.model, dtype=spec.dtype, device=spec.device)
    index = recover_all(model, tokenizer, plans, args.out, linear_ids=linear_ids,
                        linear_batch_size=rec.linear_batch_size, lora_names=healed, lora_ids=lora_ids,
                        lora=rec.lora_settings(),
                        provenance={"dtype": spec.dtype, "device": spec.device, "versions": library_versions()})
    write_record(args.record, {"methods": rec.methods, "plans": index,
                               "seconds": round(time.perf_counter() - start, 1)})
    for name, row in index.items():
        print(f"{name}: {row['seconds']:.1f} s, {row['tokens']} tokens")


if __name__ == "__main__":
    run(main)
