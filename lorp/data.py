"""The one way to read a dataset: the offline mirror when LORP_DATA_DIR is set, the hub ids otherwise.

Pipeline stages set LORP_DATA_DIR from params.yaml `data.mirror` (`use_configured_mirror`), so neither `dvc repro`
nor `dvc exp run` needs an environment variable; the locate_data stage records which source that gave.

The mirror (one JSON Lines file per split, Hugging Face schema) is read with `datasets` exactly as a
hub split would be, so the same code runs here and on a machine with the hub.
"""

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import datasets

from lorp.errors import LorpError
from lorp.hub import require_hub

MIRROR_ENV = "LORP_DATA_DIR"


class DataError(LorpError, ValueError):
    pass


@dataclass(frozen=True)
class Split:
    """One split, named both ways: hub (path, config, split, data_files) and mirror `folder/split`."""

    hub_path: str
    hub_name: str | None
    hub_split: str
    mirror: str
    data_files: dict | None = None


@dataclass(frozen=True)
class Corpus:
    field: str
    joiner: str
    calibration: tuple[Split, ...]  # first available wins
    evaluation: Split
    max_eval_docs: int | None = None
    exclude_eval_docs: bool = False  # calibration drops every document the evaluation set uses


_C4_FILES = {"train": "en/c4-train.00000-of-01024.json.gz",
             "validation": "en/c4-validation.00000-of-00008.json.gz"}


def _wt(split: str) -> Split:
    return Split("wikitext", "wikitext-2-raw-v1", split, f"wikitext-2-raw-v1/{split}")


def _ptb(split: str) -> Split:
    return Split("ptb_text_only", "penn_treebank", split, f"ptb_text_only/{split}")


CORPORA: dict[str, Corpus] = {
    "wikitext2": Corpus("text", "\n\n", (_wt("train"), _wt("validation")), _wt("test")),
    # The paper evaluates PTB on its validation split.
    "ptb": Corpus("sentence", " ", (_ptb("train"),), _ptb("validation")),
    # Calibration: C4 train on the hub; offline, the mirror's 2000-document validation sample minus
    # every document of the evaluation set. Evaluation: the GPTQ/SLEB set, the first 1100 documents
    # of validation shard 0 (the mirror holds the first 1025).
    "c4": Corpus(
        "text", " ",
        (Split("allenai/c4", None, "train", "c4-en-validation-sample2000/validation", _C4_FILES),),
        Split("allenai/c4", None, "validation", "c4-en-validation-shard00000-first1025/validation", _C4_FILES),
        max_eval_docs=1100, exclude_eval_docs=True),
}


def mirror_dir() -> Path | None:
    root = os.environ.get(MIRROR_ENV)
    if not root:
        return None
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{MIRROR_ENV}={root} is not a folder: point it at the dataset mirror or unset it")
    return path


def use_configured_mirror(configured: str | None) -> None:
    """Read from `configured` (params.yaml data.mirror, relative to the project) when it holds a MANIFEST.md and
    LORP_DATA_DIR is unset; otherwise leave the choice alone (an explicit LORP_DATA_DIR, or the hub)."""
    if configured and not os.environ.get(MIRROR_ENV) and (Path(configured) / "MANIFEST.md").is_file():
        os.environ[MIRROR_ENV] = str(Path(configured).resolve())


def source_record() -> dict:
    """What a run reads: the mirror, named by its manifest's sha256 (its path differs between clones), or the hub."""
    root = mirror_dir()
    if root is None:
        return {"kind": "hub", "datasets": sorted({s.hub_path for c in CORPORA.values()
                                                   for s in (*c.calibration, c.evaluation)})}
    path = root / "MANIFEST.md"
    if not path.is_file():
        raise DataError(f"the dataset mirror {root} has no MANIFEST.md: it cannot be checked or identified; "
                        "point LORP_DATA_DIR / data.mirror at the mirror's root")
    return {"kind": "mirror", "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "files": len(manifest(root))}


def check_source(recorded: dict) -> None:
    """Refuse to read from another source than the one locate_data recorded (and this stage's hash includes)."""
    have = source_record()
    if have != recorded:
        raise DataError(f"this stage would read {have['kind']} data but data/sources.json records {recorded}: "
                        "rerun the pipeline (dvc repro), which refreshes the record first")


def _mirror_file(root: Path, split: Split) -> Path:
    return root / f"{split.mirror}.jsonl"


@functools.cache
def manifest(root: Path) -> dict[str, tuple[int, str]]:
    """{'folder/split.jsonl': (rows, sha256)} from the mirror's MANIFEST.md (empty when it has none)."""
    path = root / "MANIFEST.md"
    if not path.exists():
        return {}
    entries, heading = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            continue
        m = re.match(r"- (?:([\w-]+): )?rows \*\*(\d+)\*\*.*sha256 `([0-9a-f]{64})`", line)
        if m and heading:
            label, rows, digest = m.groups()
            # "name/{a,b}.jsonl" and "x/test.jsonl and y/test.jsonl" headings list one file per labelled line
            names = [re.sub(r"\{[^}]*\}", label, heading)] if label and "{" in heading else heading.split(" and ")
            name = next((n for n in names if not label or label in n), names[0])
            entries[name] = (int(rows), digest)
    return entries


@functools.cache
def verify(path: Path, root: Path) -> None:
    """Refuse a mirror file whose row count or sha256 differs from the manifest."""
    expected = manifest(root).get(str(path.relative_to(root)))
    if expected is None:
        return
    raw = path.read_bytes()
    rows, digest = raw.count(b"\n") + (not raw.endswith(b"\n") and bool(raw)), hashlib.sha256(raw).hexdigest()
    if (rows, digest) != expected:
        raise DataError(f"{path} does not match {root / 'MANIFEST.md'}: {rows} rows, sha256 {digest[:12]}… "
                        f"(expected {expected[0]} rows, sha256 {expected[1][:12]}…); restore the file from the "
                        "source the manifest names")


def available(split: Split) -> bool:
    root = mirror_dir()
    return root is None or _mirror_file(root, split).exists()


def load_split(split: Split) -> datasets.Dataset:
    root = mirror_dir()
    if root is not None:
        path = _mirror_file(root, split)
        if not path.exists():
            folder = path.parent
            have = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
            raise DataError(f"dataset split missing: {path} (the mirror has {have or 'no such dataset'}); "
                            "add the file to the mirror or choose another corpus")
        verify(path, root)
        return datasets.load_dataset("json", data_files=str(path), split="train")
    require_hub(f"dataset {split.hub_path}")
    if split.data_files is not None:
        return datasets.load_dataset(split.hub_path, data_files={split.hub_split: split.data_files[split.hub_split]},
                                     split=split.hub_split)
    return datasets.load_dataset(split.hub_path, split.hub_name, split=split.hub_split)


def corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}")
    return CORPORA[name]


def evaluation_docs(name: str) -> list[str]:
    spec = corpus(name)
    texts = load_split(spec.evaluation)[spec.field]
    return texts[: spec.max_eval_docs] if spec.max_eval_docs else texts


def evaluation_text(name: str) -> str:
    return corpus(name).joiner.join(evaluation_docs(name))


def calibration_docs(name: str) -> tuple[list[str], str, int]:
    """Documents to calibrate on, the split used, and how many evaluation documents were excluded."""
    spec = corpus(name)
    split = next((s for s in spec.calibration if available(s)), None)
    if split is None:
        raise DataError(f"no calibration split of {name!r} in the mirror {mirror_dir()} "
                        f"(looked for {[s.mirror for s in spec.calibration]}); choose another corpus")
    docs = load_split(split)[spec.field]
    used = split.mirror if mirror_dir() else ":".join(x for x in (split.hub_path, split.hub_name, split.hub_split) if x)
    excluded = 0
    if spec.exclude_eval_docs:
        held_out = set(evaluation_docs(name))
        kept = [d for d in docs if d not in held_out]
        excluded, docs = len(docs) - len(kept), kept
    if not any(d.strip() for d in docs):
        raise DataError(f"calibration corpus {name!r} ({split.mirror}) has no text")
    return docs, used, excluded
