"""params.yaml: one schema, checked in full before any stage does work.

Every stage calls `load()`, so a typo'd key, an unknown method or an impossible budget is refused
in seconds with the fix named, never after a calibration pass.
"""

import difflib
from pathlib import Path
from typing import Any

import yaml

METHODS = ("lorp", "shortgpt", "streamline")
CORPORA = ("c4", "wikitext2", "ptb")
EVAL_SETS = ("wikitext2", "ptb", "c4")
DTYPES = ("float32", "bfloat16", "float16")
# The paper's nine zero-shot tasks plus piqa (lorp.zeroshot.TASKS maps each to its data).
ZEROSHOT_TASKS = ("arc_easy", "arc_challenge", "hellaswag", "winogrande", "boolq", "openbookqa", "rte", "copa",
                  "race", "piqa")


class ParamsError(ValueError):
    """A params.yaml value that cannot work; the message says what to change."""


# key -> (accepted types, allowed values or None). Sections mirror params.yaml.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], tuple | None]]] = {
    "model": {
        "source": ((str,), None),
        "dtype": ((str,), DTYPES),
        "device": ((str,), None),
    },
    "calibration": {
        "corpus": ((str,), CORPORA),
        "n_samples": ((int,), None),
        "seqlen": ((int,), None),
        "seed": ((int,), None),
    },
    "similarity": {"batch_size": ((int,), None)},
    "rls": {"force_k": ((int, type(None)), None)},
    "cluster": {"random_state": ((int,), None)},
    "allocate": {
        "methods": ((list,), METHODS),
        "budgets": ((list,), None),
        "protect_first": ((bool,), None),
        "protect_last": ((bool,), None),
    },
    "evaluate": {
        "datasets": ((list,), EVAL_SETS),
        "seqlen": ((int,), None),
        "max_windows": ((int, type(None)), None),
        "batch_size": ((int,), None),
    },
    "zeroshot": {
        "tasks": ((list,), ZEROSHOT_TASKS),
        "limit": ((int, type(None)), None),
        "batch_size": ((int,), None),
    },
    "bench": {
        "batch": ((int,), None),
        "seqlen": ((int,), None),
        "prompt_len": ((int,), None),
        "new_tokens": ((int,), None),
        "repeats": ((int,), None),
        "warmup": ((int,), None),
    },
}


def _closest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(options)})"


def _check_value(where: str, value: Any, types: tuple, allowed: tuple | None) -> None:
    if isinstance(value, bool) and bool not in types:
        raise ParamsError(f"{where}: expected {types[0].__name__}, got {value!r}")
    if not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ParamsError(f"{where}: expected {names}, got {value!r}")
    if allowed is None:
        return
    for item in value if isinstance(value, list) else [value]:
        if item not in allowed:
            raise ParamsError(f"{where}: unknown value {item!r}{_closest(str(item), allowed)}")


def validate(params: dict) -> dict:
    """Check structure, types and the model-independent ranges."""
    if not isinstance(params, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    for section, body in params.items():
        if section not in SCHEMA:
            raise ParamsError(f"params.yaml: unknown section '{section}'{_closest(section, SCHEMA)}")
        if not isinstance(body, dict):
            raise ParamsError(f"params.yaml: section '{section}' must be a mapping")
        for key, value in body.items():
            if key not in SCHEMA[section]:
                raise ParamsError(f"params.yaml: unknown key '{section}.{key}'{_closest(key, SCHEMA[section])}")
            _check_value(f"{section}.{key}", value, *SCHEMA[section][key])
    for section, keys in SCHEMA.items():
        missing = [k for k in keys if k not in params.get(section, {})]
        if missing:
            raise ParamsError(f"params.yaml: missing {', '.join(f'{section}.{k}' for k in missing)}")
    for key in ("calibration.n_samples", "calibration.seqlen", "similarity.batch_size", "evaluate.seqlen",
                "evaluate.batch_size", "zeroshot.batch_size", "bench.batch", "bench.seqlen", "bench.prompt_len",
                "bench.new_tokens", "bench.repeats"):
        section, name = key.split(".")
        if params[section][name] < 1:
            raise ParamsError(f"{key} must be >= 1, got {params[section][name]}")
    if params["zeroshot"]["limit"] is not None and params["zeroshot"]["limit"] < 1:
        raise ParamsError("zeroshot.limit must be >= 1 example per task, or null for every example")
    if params["evaluate"]["max_windows"] is not None and params["evaluate"]["max_windows"] < 1:
        raise ParamsError("evaluate.max_windows must be >= 1, or null for every window")
    budgets = params["allocate"]["budgets"]
    if not budgets or not all(isinstance(b, int) and not isinstance(b, bool) for b in budgets):
        raise ParamsError(f"allocate.budgets must be a non-empty list of integers, got {budgets!r}")
    if any(b <= 0 for b in budgets):
        raise ParamsError(f"allocate.budgets: every budget must be >= 1 block, got {budgets}")
    if not params["allocate"]["methods"]:
        raise ParamsError(f"allocate.methods is empty: name at least one of {', '.join(METHODS)}")
    force_k = params["rls"]["force_k"]
    if force_k is not None and force_k < 2:
        raise ParamsError(f"rls.force_k must be >= 2 clusters (or null for the RLS policy), got {force_k}")
    return params


def n_prunable(num_layers: int, protect_first: bool, protect_last: bool) -> int:
    return num_layers - int(protect_first) - int(protect_last)


def check_against_model(params: dict, num_layers: int, max_positions: int | None) -> None:
    """Checks that need the model's depth and context, done before the calibration pass."""
    alloc = params["allocate"]
    prunable = n_prunable(num_layers, alloc["protect_first"], alloc["protect_last"])
    too_big = [b for b in alloc["budgets"] if b >= prunable]
    if too_big:
        raise ParamsError(
            f"allocate.budgets {too_big}: the model has {num_layers} blocks, {prunable} of them prunable "
            f"(protect_first={alloc['protect_first']}, protect_last={alloc['protect_last']}); "
            f"use budgets below {prunable}")
    force_k = params["rls"]["force_k"]
    if force_k is not None and force_k > num_layers:
        raise ParamsError(f"rls.force_k={force_k} exceeds the model's {num_layers} blocks; use 2..{num_layers}")
    for key in ("calibration", "evaluate"):
        seqlen = params[key]["seqlen"]
        if max_positions is not None and seqlen > max_positions:
            raise ParamsError(f"{key}.seqlen={seqlen} is longer than the model's max_position_embeddings "
                              f"({max_positions}); use at most {max_positions}")


def load(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root or pass the params file")
    return validate(yaml.safe_load(path.read_text()))
