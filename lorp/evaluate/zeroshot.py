"""Zero-shot accuracy on the paper's tasks through lm-evaluation-harness, with the model in memory.

Offline (a dataset mirror given), each built-in task is re-pointed at the mirror's JSON Lines by a generated
YAML that `include`s the installed task file, so prompts, choices and helper functions (`!function`,
resolved next to the included file) stay exactly lm-eval's; only where the rows come from changes.
Without a mirror the built-in hub tasks run unchanged.
"""

import contextlib
import difflib
import importlib.metadata
import math
import tempfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import lm_eval
import lm_eval.evaluator
import yaml
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml
from tqdm.auto import tqdm

from lorp.data.hub import DATA_ALTERNATIVES, require_hub
from lorp.data.sources import verify
from lorp.errors import LorpError
from lorp.evaluate.plan_lm import PlanLM
from lorp.evaluate.tasks import TASKS
from lorp.io import library_versions
from lorp.model.blocks import locate_blocks
from lorp.model.forward import check_indices
from lorp.model.patches import Patch, distinct_runs, seconds_per_plan

SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
PREFIX = "lorp_"
FEWSHOT_SEED = 1234  # simple_evaluate's default; no 0-shot task draws from it


class ZeroShotError(LorpError, ValueError):
    pass


def installed_yaml(task: str) -> Path:
    return Path(lm_eval.tasks.__file__).parent / TASKS[task].yaml


def scored_split(task: str) -> tuple[str, str]:
    """(config key, split name) lm-eval scores: test_split when the task has one, else validation_split."""
    cfg = load_yaml(installed_yaml(task), resolve_func=False)
    key = "test_split" if cfg.get("test_split") else "validation_split"
    return key, cfg[key]


def check_request(tasks: list[str], limit: int | None) -> None:
    """Refuse unknown tasks and a limit that is not None or an int >= 1, before any model work."""
    if not tasks:
        raise ZeroShotError(f"no zero-shot tasks given: choose from {', '.join(TASKS)}")
    for name in tasks:
        if name not in TASKS:
            close = difflib.get_close_matches(name, TASKS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ZeroShotError(f"unknown zero-shot task {name!r}{hint}: choose from {', '.join(TASKS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ZeroShotError(f"zero-shot limit {limit!r} is invalid: use null for every example or an integer >= 1 "
                            "(examples per task)")


def mirror_files(tasks: list[str], root: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """({task: verified mirror file}, {task: reason skipped}); a listed file that is absent is an error."""
    files, skipped = {}, {}
    for name in tasks:
        entry, (_, split) = TASKS[name].mirror, scored_split(name)
        if entry is None:
            skipped[name] = (f"no {name} {split} split in the dataset mirror (data.mirror, see its "
                             "MANIFEST.md); add it there or run with the hub")
            continue
        if entry.rsplit("/", 1)[1] != split:
            raise ZeroShotError(f"lorp.evaluate.tasks.TASKS maps {name} to the mirror split {entry}, but lm-eval "
                                f"scores "
                                f"its {split!r} split; fix the table")
        path = root / f"{entry}.jsonl"
        if not path.exists():
            raise ZeroShotError(f"zero-shot task {name}: mirror file {path} is missing; add it to the mirror "
                                f"({root}) or drop {name} from the task list")
        verify(path, root)
        files[name] = path
    return files, skipped


def write_configs(files: dict[str, Path], out_dir: Path) -> dict[str, str]:
    """Write one `lorp_<task>.yaml` per task into out_dir; returns {task: lm-eval task name}.

    Every split but the scored one is nulled: lm-eval builds few-shot docs from the training split
    even at 0 shots, and the mirror holds only the scored split.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {}
    for task, path in files.items():
        key, split = scored_split(task)
        cfg = {"include": str(installed_yaml(task)), "task": PREFIX + task, "dataset_path": "json",
               "dataset_name": None, "dataset_kwargs": {"data_files": {split: str(path)}},
               **{k: None for k in SPLIT_KEYS}, key: split}
        (out_dir / f"{PREFIX}{task}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        names[task] = PREFIX + task
    return names


def task_setup(tasks: list[str], stack: contextlib.ExitStack, mirror: Path | None
               ) -> tuple[dict[str, str], dict[str, str], dict]:
    """({task: lm-eval name}, {task: reason skipped}, lm-eval's task dict), built once for every model scored.

    The generated configs live in a folder the stack removes."""
    if mirror is None:
        require_hub(f"zero-shot task {', '.join(tasks)}", DATA_ALTERNATIVES)
        names, skipped, manager = {t: t for t in tasks}, {}, TaskManager()
    else:
        files, skipped = mirror_files(tasks, mirror)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lorp-zeroshot-"))
        names = write_configs(files, Path(tmp))
        manager = TaskManager(include_path=tmp, include_defaults=False)  # the built-in index takes ~30 s
    if not names:
        return names, skipped, {}
    loaded = manager.load(list(names.values()))
    for task in loaded["tasks"].values():  # as simple_evaluate(num_fewshot=0) sets them
        if task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)
    return names, skipped, loaded


def _number(value) -> float | None:
    """lm-eval writes 'N/A' for a stderr it cannot compute (one example); that becomes None."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def evaluate_plans(model, tokenizer, plans: Mapping[str, Collection[int]], *, tasks: list[str], limit: int | None,
                   batch_size: int, mirror: Path | None, patches: Mapping[str, Patch] | None = None,
                   share_context: bool = True) -> dict[str, dict]:
    """{plan: zero-shot accuracy per task (acc_norm where the task has it, else acc) and their average} of the
    model with each plan's blocks bypassed (empty: dense) and a recovered plan's patch in place, exactly as on its
    checkpoint; each distinct plan once, the dense model first so the plans resume from its recorded block inputs.

    limit: None scores every example, an int >= 1 at most that many per task. Tasks the mirror lacks
    are reported as {"skipped": reason} and left out of the average. "seconds": the plan's own scoring time
    (seconds_per_plan). share_context: a question's context runs once for all its choices where the model allows it
    exactly (PlanLM); "tokens": the model input tokens that took, and lm-eval's per-choice loop's count.
    """
    tasks = list(dict.fromkeys(tasks))
    check_request(tasks, limit)
    with contextlib.ExitStack() as stack:
        names, skipped, task_dict = task_setup(tasks, stack, mirror)  # refuses a missing mirror file first
        done, took, keys, tokens = {}, {}, dict(zip(plans, plans, strict=True)), {}
        if task_dict:
            n = len(locate_blocks(model)[1])
            check_indices(set().union(*map(set, plans.values())), n, "plan")
            keys, runs = distinct_runs(model, plans, patches)  # the dense model first, if it is among the plans
            resumed = any(run.start == n for run in runs.values())  # the dense run records the inputs plans resume at
            lm = PlanLM(model, tokenizer, batch_size, starts={r.start for r in runs.values() if r.start < n}
                        if resumed else (), share_context=share_context)
            for key, run in tqdm(runs.items(), desc="zero-shot plans", unit="plan"):
                lm.plan, tick = run, time.perf_counter()
                done[key] = lm_eval.evaluator.evaluate(lm=lm, task_dict=task_dict, limit=limit, log_samples=True)
                took[key] = time.perf_counter() - tick
            tokens = lm.tokens | {"shared_context": lm.share_context}
    spent = seconds_per_plan(keys, took)
    return {name: _report(done.get(keys[name], {}), names, skipped, tasks, limit, mirror)
            | {"seconds": spent[name]} | ({"tokens": tokens} if tokens else {}) for name in plans}


def _report(out: dict, names: dict[str, str], skipped: dict[str, str], tasks: list[str], limit: int | None,
            root: Path | None) -> dict:
    report = {t: {"skipped": reason} for t, reason in skipped.items()}
    for task, name in names.items():
        row = out["results"][name]
        metric = "acc_norm" if "acc_norm,none" in row else "acc"
        samples = sorted(out["samples"][name], key=lambda sample: sample["doc_id"])
        report[task] = {"metric": metric, "value": float(row[f"{metric},none"]),
                        "stderr": _number(row.get(f"{metric}_stderr,none")),
                        "n": int(out["n-samples"][name]["effective"]),
                        "correct": [int(sample[metric]) for sample in samples]}  # per example, in doc order
    ran = [r["value"] for r in report.values() if "value" in r]
    return {"tasks": {t: report[t] for t in tasks}, "average": sum(ran) / len(ran) if ran else None,
            "limit": limit, "data": str(root) if root else "hub",
            "lm_eval_version": importlib.metadata.version("lm_eval")}


def evaluate(model, tokenizer, *, tasks: list[str], limit: int | None, batch_size: int, mirror: Path | None) -> dict:
    """evaluate_plans of the model as it is: one model's accuracy per task and their average."""
    return evaluate_plans(model, tokenizer, {"model": ()}, tasks=tasks, limit=limit, batch_size=batch_size,
                          mirror=mirror)["model"]


def zeroshot_record(results: Mapping[str, dict], *, limit: int | None, dtype: str, device: str, start: float) -> dict:
    """zeroshot.json from evaluate_plans' results: accuracy and stderr per plan and task, each example's
    correctness (0/1, in the task's document order: the same examples for every plan, so plans compare paired),
    the tasks skipped, the examples scored per task, the stage's seconds since `start` and each plan's own share
    of them (plan_seconds), the model input tokens per plan with and without the shared context (tokens)."""
    accuracy, stderr, correct, skipped = {}, {}, {}, {}
    for name, result in results.items():
        tasks = result["tasks"]
        accuracy[name] = {t: r["value"] for t, r in tasks.items() if "value" in r} | {"average": result["average"]}
        stderr[name] = {t: r["stderr"] for t, r in tasks.items() if "value" in r}
        correct[name] = {t: r["correct"] for t, r in tasks.items() if "value" in r}
        skipped |= {t: r["skipped"] for t, r in tasks.items() if "skipped" in r}
        print(name, {t: round(v, 3) for t, v in accuracy[name].items()})
    examples = {t: r.get("n") for t, r in results["dense"]["tasks"].items()}
    tokens = results["dense"].get("tokens")  # the same requests for every plan
    return {"accuracy": accuracy, "stderr": stderr, "correct": correct, "skipped": skipped, "limit": limit,
            "examples": examples, **({"tokens": tokens} if tokens else {}),
            "seconds": round(time.perf_counter() - start, 1),
            "plan_seconds": {name: round(result["seconds"], 2) for name, result in results.items()}, "dtype": dtype,
            "device": device,
            "versions": library_versions()}
