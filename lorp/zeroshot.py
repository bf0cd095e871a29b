"""Zero-shot accuracy on the paper's tasks through lm-evaluation-harness, with the model in memory.

Offline (LORP_DATA_DIR set), each built-in task is re-pointed at the mirror's JSON Lines by a generated
YAML that `include`s the installed task file, so prompts, choices and helper functions (`!function`,
resolved next to the included file) stay exactly lm-eval's; only where the rows come from changes.
Without a mirror the built-in hub tasks run unchanged.
"""

import difflib
import importlib.metadata
import math
import tempfile
from pathlib import Path

import lm_eval
import yaml
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from lorp.data import MIRROR_ENV, mirror_dir, verify
from lorp.errors import LorpError
from lorp.hub import require_hub
from lorp.tokens import needs_bos

# task -> (installed YAML under lm_eval/tasks, mirror `folder/split` or None when the mirror has no copy).
TASKS: dict[str, tuple[str, str | None]] = {
    "arc_easy": ("arc/arc_easy.yaml", "ai2_arc-ARC-Easy/test"),
    "arc_challenge": ("arc/arc_challenge.yaml", "ai2_arc-ARC-Challenge/test"),
    "hellaswag": ("hellaswag/hellaswag.yaml", None),
    "winogrande": ("winogrande/default.yaml", "winogrande-winogrande_xl/validation"),
    "boolq": ("super_glue/boolq/default.yaml", "super_glue-boolq/validation"),
    "openbookqa": ("openbookqa/openbookqa.yaml", "openbookqa-main/test"),
    "rte": ("glue/rte/default.yaml", "glue-rte/validation"),
    "copa": ("super_glue/copa/default.yaml", "super_glue-copa/validation"),
    "race": ("race/race.yaml", "race-high/test"),
    "piqa": ("piqa/piqa.yaml", "piqa/validation"),
}
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
PREFIX = "lorp_"


class ZeroShotError(LorpError, ValueError):
    pass


def installed_yaml(task: str) -> Path:
    return Path(lm_eval.tasks.__file__).parent / TASKS[task][0]


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


def mirror_files(tasks: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """({task: verified mirror file}, {task: reason skipped}); a listed file that is absent is an error."""
    root = mirror_dir()
    if root is None:
        raise ZeroShotError("LORP_DATA_DIR is not set: there is no dataset mirror to point the tasks at")
    files, skipped = {}, {}
    for name in tasks:
        entry, (_, split) = TASKS[name][1], scored_split(name)
        if entry is None:
            skipped[name] = (f"no {name} {split} split in the dataset mirror (${MIRROR_ENV}, see its "
                             "MANIFEST.md); add it there or run with the hub")
            continue
        if entry.rsplit("/", 1)[1] != split:
            raise ZeroShotError(f"lorp.zeroshot.TASKS maps {name} to the mirror split {entry}, but lm-eval scores "
                                f"its {split!r} split; fix the table")
        path = root / f"{entry}.jsonl"
        if not path.exists():
            raise ZeroShotError(f"zero-shot task {name}: mirror file {path} is missing; add it to the mirror "
                                f"(LORP_DATA_DIR={root}) or drop {name} from the task list")
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


def make_lm(model, tokenizer, batch_size: int) -> HFLM:
    """HFLM around the in-memory model; BOS forced on only where the tokenizer itself starts with it (Gemma).

    The batch is small because lm-eval takes a full-vocabulary log-softmax per token: 4 RACE-length
    sequences with Gemma's 262k vocabulary already need several GB.
    """
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                add_bos_token=True if needs_bos(tokenizer) else None)


def _number(value) -> float | None:
    """lm-eval writes 'N/A' for a stderr it cannot compute (one example); that becomes None."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def evaluate(model, tokenizer, *, tasks: list[str], limit: int | None, batch_size: int) -> dict:
    """Zero-shot accuracy per task (acc_norm where the task has it, else acc) and their average.

    limit: None scores every example, an int >= 1 at most that many per task. Tasks the mirror lacks
    are reported as {"skipped": reason} and left out of the average.
    """
    tasks = list(dict.fromkeys(tasks))
    check_request(tasks, limit)
    root = mirror_dir()
    with tempfile.TemporaryDirectory(prefix="lorp-zeroshot-") as tmp:
        if root is None:
            require_hub(f"zero-shot task {', '.join(tasks)}")
            names, skipped, manager = {t: t for t in tasks}, {}, TaskManager()
        else:
            files, skipped = mirror_files(tasks)
            names = write_configs(files, Path(tmp))
            manager = TaskManager(include_path=tmp, include_defaults=False)  # the built-in index takes ~30 s
        out = lm_eval.simple_evaluate(model=make_lm(model, tokenizer, batch_size), tasks=list(names.values()),
                                      num_fewshot=0, limit=limit, task_manager=manager,
                                      log_samples=False) if names else {}
    report = {t: {"skipped": reason} for t, reason in skipped.items()}
    for task, name in names.items():
        row = out["results"][name]
        metric = "acc_norm" if "acc_norm,none" in row else "acc"
        report[task] = {"metric": metric, "value": float(row[f"{metric},none"]),
                        "stderr": _number(row.get(f"{metric}_stderr,none")),
                        "n": int(out["n-samples"][name]["effective"])}
    ran = [r["value"] for r in report.values() if "value" in r]
    return {"tasks": {t: report[t] for t in tasks}, "average": sum(ran) / len(ran) if ran else None,
            "limit": limit, "data": str(root) if root else "hub",
            "lm_eval_version": importlib.metadata.version("lm_eval")}
