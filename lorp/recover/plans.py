"""Every recovery of every chosen plan, written as plain checkpoints beside an index of what each one cost."""

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lorp.io import read_json, staged_dir, write_json
from lorp.model.load import load_model
from lorp.model.patches import Patch, first_changed_block, pruned_patch
from lorp.model.prune import max_logit_diff, write_checkpoint
from lorp.recover.checkpoints import recovered_model, save_recovered
from lorp.recover.linear import recover
from lorp.recover.lora import heal
from lorp.recover.recoveries import recovered_name


def base_record(plan: dict, recovery: str) -> dict:
    fields = ("name", "method", "budget", "num_blocks", "removed", "kept")
    return {k: plan[k] for k in fields} | {"name": recovered_name(plan["name"], recovery), "plan": plan["name"],
                                           "recovery": recovery}


def checkpoint_record(record: dict) -> dict:
    """The record as a checkpoint folder keeps it: without the seconds, which differ from run to run, so a rerun
    writes byte-identical folders and DVC reruns nothing downstream of them (recovery.json keeps the seconds)."""
    return {key: {k: v for k, v in value.items() if k != "seconds"} if key == "lora" else value
            for key, value in record.items() if key != "seconds"}


def recover_all(model, tokenizer, plans: Sequence[dict], out_dir: str | Path, *, linear_ids: np.ndarray | None,
                linear_batch_size: int, lora_names: Sequence[str], lora_ids: np.ndarray | None,
                lora: Mapping, provenance: dict) -> dict:
    """{recovered name: record} for the linear recovery of every plan (linear_ids given) and the LoRA healing of
    lora_names, each written under out_dir/<name> (plus index.json, both as `checkpoint_record` keeps them);
    out_dir is replaced only once all are written.
    Each record says where the plan's forward resumes on the dense model (`resumes_at`: its first changed block).

    Plans with the same removed blocks share one linear fit (the same checkpoint bytes under each name).
    """
    index = {}
    with staged_dir(out_dir) as staging:
        if linear_ids is not None:
            distinct = {frozenset(p["removed"]): sorted(p["removed"]) for p in plans}
            start = time.perf_counter()
            fits = recover(model, linear_ids, {",".join(map(str, r)): r for r in distinct.values()},
                           batch_size=linear_batch_size)
            first: dict[str, str] = {}
            for p in plans:
                key = ",".join(map(str, sorted(p["removed"])))
                fit = fits[key]
                record = base_record(p, "linear") | {
                    "runs": fit["runs"], "seconds": fit["seconds"], "tokens": int(linear_ids.size),
                    "resumes_at": first_changed_block(model, p["removed"], fit["patch"]), **provenance}
                if key in first:  # one fit serves every plan of these blocks; its time belongs to the first
                    record["same_fit_as"] = first[key]
                first.setdefault(key, record["name"])
                record["max_abs_logit_diff_vs_patched"] = save_recovered(model, tokenizer, p["removed"], fit["patch"],
                                                                         staging / record["name"],
                                                                         checkpoint_record(record))
                index[record["name"]] = record
            print(f"linear recovery: {len(distinct)} distinct plans fitted in {time.perf_counter() - start:.1f} s")
        by_name = {p["name"]: p for p in plans}
        for name in lora_names:
            p = by_name[name]
            healed, trained = heal(recovered_model(model, p["removed"], {}), lora_ids, **lora)
            changed = pruned_patch(model, healed, p["kept"])
            record = base_record(p, "lora") | {"lora": trained, "seconds": trained["seconds"],
                                               "tokens": trained["tokens"],
                                               "resumes_at": first_changed_block(model, p["removed"], changed),
                                               **provenance}
            write_checkpoint(healed, tokenizer, staging / record["name"], checkpoint_record(record))
            index[record["name"]] = record
            del healed
        write_json(staging / "index.json", {name: checkpoint_record(record) for name, record in index.items()})
    return index


def load_recovered(model, folder: str | Path, dtype: str) -> tuple[dict[str, list[int]], dict[str, Patch]]:
    """({recovered name: removed blocks}, {recovered name: patch}) of the recover stage's folder: each checkpoint
    loaded as written and compared with the dense model, so evaluation runs exactly what a user loads.

    The patch's tensors are copied: loaded ones are views of the memory-mapped checkpoint file, and a view kept
    holds the whole file mapped (22 recovered Gemma-3 checkpoints put evaluate's peak RSS at 21.9 GiB)."""
    plans, patches = {}, {}
    for name, record in read_json(Path(folder) / "index.json").items():
        pruned = load_model(Path(folder) / name, dtype=dtype, device="cpu")
        patch = {key: value.clone() for key, value in pruned_patch(model, pruned, record["kept"]).items()}
        plans[name], patches[name] = record["removed"], patch
        del pruned
    return plans, patches


def recover_plan(model, removed: Sequence[int], how: str, probe, *, linear_ids: np.ndarray, linear_batch_size: int,
                 lora_ids: np.ndarray | None, lora: Mapping) -> tuple:
    """(one plan's pruned model after recovery `how` (none, linear, lora), its record, the max |logit difference|
    against its in-memory form: the dense model with the blocks bypassed and, for linear, the fit in place)."""
    removed, patch, record = list(removed), {}, None
    if how == "linear":
        fit = recover(model, linear_ids, {"plan": removed}, batch_size=linear_batch_size)["plan"]
        patch, record = fit["patch"], {"recovery": how, "runs": fit["runs"], "seconds": fit["seconds"]}
    pruned = recovered_model(model, removed, patch)
    diff = max_logit_diff(pruned, model, removed, probe, patch)
    if how == "lora":  # the merge is checked against its unmerged adapters by tests/test_lora.py
        pruned, trained = heal(pruned, lora_ids, **lora)
        record = {"recovery": how, "lora": trained}
    return pruned, record, diff
