"""What a run needs from this machine, checked by the first stage before DVC deletes any output: a model source
that resolves, a device and dtype torch supports there, memory for the largest stage (the disk: lorp.model.disk);
and what the last run's records say each model costs.

The figures are estimates: from the model's config (its fetched folder or a local source), else from the records a
previous run left (dvc.lock's output sizes, data/<key>/model_info.json, each stage's peak RSS and seconds).
`check_disk(free=)` and `check_memory(available=)` take a figure instead of the machine's: that is how the tests
simulate a full disk or a small machine; no environment variable overrides them.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM

from lorp.data.hub import MODEL_ALTERNATIVES, require_hub
from lorp.errors import LorpError, ParamsError
from lorp.io import read_json
from lorp.model.blocks import locate_blocks
from lorp.model.fetch import PIP_HINT, PYPI_MODELS, _package_dir, resolve_source
from lorp.model.load import DTYPES, ModelError, check_checkpoint, load_config
from lorp.model.stage_records import recorded_seconds

MIB, GIB = 1 << 20, 1 << 30
IMPORTS = 500 * MIB  # Python, torch, transformers, lm-eval resident before the model loads
DTYPE_BYTES = {name: torch.empty(0, dtype=dtype).element_size() for name, dtype in DTYPES.items()}
TIMED = (("extract_similarities", "data/{key}/similarity/timing.json"),  # (stage, its record with "seconds")
         ("score_blocks", "data/{key}/importance/importance.json"), ("select_variants", "data/{key}/variants.json"),
         ("marginal_cost", "data/{key}/importance/marginal.json"), ("recover", "reports/results/{key}/recovery.json"),
         ("evaluate", "reports/results/{key}/ppl.json"), ("zeroshot", "reports/results/{key}/zeroshot.json"),
         ("study", "reports/results/{key}/study.json"))
PEAKS = (("fetch_model", "data/{key}/model_info.json"), *TIMED)  # stages whose records carry their peak RSS


class ResourceError(LorpError, RuntimeError):
    """The machine cannot hold what params.yaml asks for (disk, memory)."""


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def read_record(path: Path, kind: type = dict):
    """The record at path, or an empty one when it is missing, unreadable or not of that kind."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return kind()
    return record if isinstance(record, kind) else kind()


def check_source(key: str, source: str, where: str | None = None) -> str:
    """The source's kind (pypi / local / hub), refused with models.<key>.source named when it cannot be fetched.
    fetch's own checks: resolve_source, and _package_dir (private to lorp.model.fetch, no public twin)."""
    kind = None
    try:
        kind, value = resolve_source(source)
        if kind == "pypi":
            spec = PYPI_MODELS[value]
            for package, file in zip(spec.packages, spec.files, strict=True):
                if not (_package_dir(package) / file).is_file():
                    raise ModelError(f"PyPI package {package} lacks {file}: reinstall it: {PIP_HINT}")
        elif kind == "local":
            if not Path(value).is_dir():
                raise ModelError(f"{value} is a file, not a checkpoint folder")
            check_checkpoint(value)
        else:
            require_hub(f"hub model {value}", MODEL_ALTERNATIVES)
    except LorpError as err:  # ModelError, HubUnreachable
        folder = " (read as a hub id: no such folder exists)" if kind == "hub" and not source.startswith("hub:") else ""
        raise ParamsError(f"{where or f'models.{key}.source'}: {source!r}{folder}: {err}") from None
    return kind


def dtype_problem(dtype: str, target: str) -> str | None:
    """Why `dtype` cannot run on `target` ('cpu' or 'cuda:N'), or None. CPU: a tiny matmul in that dtype."""
    if dtype == "float32":
        return None
    if target.startswith("cuda"):
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            return f"is not supported on {target} (torch.cuda.is_bf16_supported() is False)"
        return None
    try:
        a = torch.ones(4, 4, dtype=DTYPES[dtype], device=target)
        torch.matmul(a, a).sum().item()
    except (RuntimeError, TypeError) as err:
        return f"matmul fails on {target} with torch {torch.__version__} ({str(err).splitlines()[0]})"
    return None


def check_device(key: str, device: str, dtype: str, where: tuple[str, str] | None = None) -> str:
    """Where the model will run ('cpu' or 'cuda:N'; 'auto' resolves to cuda:0 or cpu), refused when torch does not
    see the device or cannot compute in the dtype there."""
    device_key, dtype_key = where or (f"models.{key}.device", f"models.{key}.dtype")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = "cuda:0" if count == 1 else f"cuda:0..cuda:{count - 1}"
    seen = f"torch {torch.__version__} sees " + (f"{count} CUDA device(s), {devices}" if count else "no CUDA device")
    if device in ("cpu", "auto"):
        target = "cuda:0" if device == "auto" and count else "cpu"
    elif match := re.fullmatch(r"cuda(?::(\d+))?", device):
        index = int(match.group(1) or 0)
        if index >= count:
            raise ParamsError(f"{device_key}: {device}, but {seen}; use {devices + ' or ' if count else ''}cpu")
        target = f"cuda:{index}"
    else:
        raise ParamsError(f"{device_key}: {device!r} is not a device; use cpu, cuda, cuda:N or auto")
    if problem := dtype_problem(dtype, target):
        raise ParamsError(f"{dtype_key}: {dtype} {problem}; use float32 (or another {device_key})")
    return target


@dataclass(frozen=True)
class Shape:
    """What is known of a model's size; block_parameters and hidden only from a config."""

    parameters: int
    num_blocks: int
    block_parameters: int | None = None
    hidden: int | None = None


def config_shape(folder: Path) -> Shape:
    """The model's parameter counts from its config alone: built on the meta device, no weights read."""
    config = load_config(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    blocks = locate_blocks(model)[1]
    return Shape(sum(p.numel() for p in model.parameters()), len(blocks),
                 sum(p.numel() for p in blocks.parameters()), config.get_text_config().hidden_size)


def locked(root: Path, key: str) -> tuple[dict, dict]:
    """The model's fetch_model and prune entries in the workspace's dvc.lock: what the last run recorded."""
    try:
        stages = (yaml.safe_load((root / "dvc.lock").read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        stages = {}
    return stages.get(f"fetch_model@{key}", {}), stages.get(f"prune@{key}", {})


def model_shape(root: Path, key: str, source: str, kind: str) -> Shape | None:
    """From the fetched checkpoint's (or a local source's) config, else from the last fetch's model_info.json
    when it fetched the same source, else None (a hub model never fetched)."""
    info = read_record(root / "data" / key / "model_info.json")
    dense = root / "models" / key / "dense"
    for folder in ((dense,) if info.get("source") == source else ()) + ((Path(source),) if kind == "local" else ()):
        if (folder / "config.json").is_file():
            return config_shape(folder)
    if info.get("source") == source and {"parameters", "num_blocks"} <= set(info):
        return Shape(info["parameters"], info["num_blocks"])
    return None


def memory_need(root: Path, key: str, dtype: str, target: str, shape: Shape | None,
                tokens: int) -> tuple[int | None, str]:
    """(bytes, how) the largest stage needs: weights + tokens x hidden x blocks x 4 bytes of recorded block inputs
    (+ imports on CPU), or the last evaluate's peak RSS where it ran at this dtype on CPU and measured more."""
    if shape is None:
        return None, "unknown (no config or record of this source yet)"
    weights = shape.parameters * DTYPE_BYTES[dtype]
    inputs = tokens * shape.hidden * shape.num_blocks * 4 if shape.hidden else 0
    formula = weights + inputs + (IMPORTS if target == "cpu" else 0)
    how = f"weights {gib(weights)} + " + (f"{tokens} tokens x {shape.hidden} x {shape.num_blocks} blocks of block "
                                          "inputs" if inputs else "block inputs unknown (no config)")
    info = read_record(root / "data" / key / "model_info.json")
    peaks = {stage: read_record(root / pattern.format(key=key)).get("peak_rss_mib", 0) for stage, pattern in PEAKS}
    stage = max(peaks, key=peaks.get)
    recorded = int(peaks[stage] * MIB) if target == "cpu" and info.get("dtype") == dtype else 0
    if recorded >= formula:
        return recorded, f"the last run's largest recorded peak RSS, {stage}'s"
    return formula, how + (" + imports" if target == "cpu" else "")


def memory_available(target: str) -> tuple[int, str]:
    """(bytes, what) free for the model on target: MemAvailable on CPU, the device's free memory on CUDA."""
    if target.startswith("cuda"):
        return torch.cuda.mem_get_info(int(target.split(":")[1]))[0], f"free on {target}"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024, "MemAvailable"
    raise ResourceError("cannot read MemAvailable from /proc/meminfo")


def check_memory(key: str, need: int | None, how: str, target: str, available: int | None = None) -> str:
    """Refuse when the model's estimate exceeds the memory free on its device; the summary line otherwise."""
    space, what = (available, "given") if available is not None else memory_available(target)
    if need is not None and need > space:
        raise ResourceError(
            f"models.{key}: the largest stage needs about {gib(need)} on {target} ({how}), but {gib(space)} is "
            f"available ({what}); use a smaller models.{key}.dtype (bfloat16), lower evaluate.batch_size / "
            "similarity.batch_size, or free memory")
    return f"memory: ~{gib(need) if need is not None else 'unknown'} ({how}) of {gib(space)} {what}"


def time_line(root: Path, key: str) -> str:
    """The stages' seconds the last run recorded for the model (marginal_cost's rows share one computation)."""
    seconds = {}
    for stage, pattern in TIMED:
        value = recorded_seconds(read_record(root / pattern.format(key=key)))
        if isinstance(value, (int, float)) and value:
            seconds[stage] = value
    if not seconds:
        return "time: unknown (no records of a previous run)"
    return (f"time: ~{sum(seconds.values()) / 60:.0f} min by the last run's records (" +
            ", ".join(f"{s} {v:.0f} s" for s, v in seconds.items()) + "; unrecorded: " +
            ", ".join([s for s, _ in TIMED if s not in seconds] + ["fetch_model", "prune", "bench"]) + ")")
