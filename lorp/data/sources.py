"""The one way to read a dataset: from the offline mirror when one is given, from the hub ids otherwise.

The mirror is a value (params.yaml `data.mirror`, resolved by `mirror_root`, or the command's `--data`) passed to
every reader; a configured mirror that cannot be found is refused, never silently replaced by the Hub. The
locate_data stage records which source that gave.

The mirror (one JSON Lines file per split, Hugging Face schema) is read with `datasets` exactly as a hub split
would be, so the same code runs here and on a machine with the hub.
"""

import functools
import hashlib
import re
from pathlib import Path

from lorp.data.corpora import CORPORA, DataError, Split, corpus
from lorp.data.hub import DATA_ALTERNATIVES, require_hub

EXPERIMENT_COPIES = (".dvc", "tmp", "exps")  # where `dvc queue` runs an experiment: <project>/.dvc/tmp/exps/<run>


def project_root(folder: Path) -> Path:
    """The project a folder belongs to: itself, or for a queued DVC experiment's temporary copy the project it
    was copied from, so that a relative `data.mirror` means the same folder in both."""
    folder = folder.resolve()
    parts = folder.parts
    for i in range(len(parts) - len(EXPERIMENT_COPIES)):
        if parts[i:i + len(EXPERIMENT_COPIES)] == EXPERIMENT_COPIES:
            return Path(*parts[:i])
    return folder


def mirror_root(configured: str | None, *, where: str = "data.mirror", project: Path | None = None) -> Path | None:
    """The mirror folder `configured` names (relative to the project), or None for the Hub when nothing is.

    A mirror that is named but not there is an error naming `where` and the path tried.
    """
    if configured is None:
        return None
    path = Path(configured)
    if not path.is_absolute():
        path = project_root(project or Path.cwd()) / path
    if not (path / "MANIFEST.md").is_file():
        state = "has no MANIFEST.md" if path.is_dir() else "does not exist"
        raise DataError(f"{where}: the dataset mirror {configured!r} ({path.resolve()}) {state}; point {where} at the "
                        "mirror's root (the folder with MANIFEST.md), or set it to null to read from the Hugging Face "
                        "Hub")
    return path.resolve()


def source_record(mirror: Path | None) -> dict:
    """What a run reads: the mirror, named by its manifest's sha256 (its path differs between clones), or the hub."""
    if mirror is None:
        return {"kind": "hub", "datasets": sorted({s.hub_path for c in CORPORA.values()
                                                   for s in (*c.calibration, c.evaluation)})}
    path = mirror / "MANIFEST.md"
    return {"kind": "mirror", "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "files": len(manifest(mirror))}


def check_source(recorded: dict, mirror: Path | None) -> None:
    """Refuse to read from another source than the one locate_data recorded (and this stage's hash includes)."""
    have = source_record(mirror)
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


def available(split: Split, mirror: Path | None) -> bool:
    return mirror is None or _mirror_file(mirror, split).exists()


def load_split(split: Split, mirror: Path | None):
    import datasets  # heavy: only the stages that read text pay for it

    if mirror is not None:
        path = _mirror_file(mirror, split)
        if not path.exists():
            folder = path.parent
            have = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
            raise DataError(f"dataset split missing: {path} (the mirror has {have or 'no such dataset'}); "
                            "add the file to the mirror or choose another corpus")
        verify(path, mirror)
        return datasets.load_dataset("json", data_files=str(path), split="train")
    require_hub(f"dataset {split.hub_path}", DATA_ALTERNATIVES)
    if split.data_files is not None:
        return datasets.load_dataset(split.hub_path, data_files={split.hub_split: split.data_files[split.hub_split]},
                                     split=split.hub_split)
    return datasets.load_dataset(split.hub_path, split.hub_name, split=split.hub_split)


def evaluation_docs(name: str, mirror: Path | None) -> list[str]:
    spec = corpus(name)
    texts = load_split(spec.evaluation, mirror)[spec.field]
    return texts[: spec.max_eval_docs] if spec.max_eval_docs else texts


def evaluation_text(name: str, mirror: Path | None) -> str:
    return corpus(name).joiner.join(evaluation_docs(name, mirror))


def calibration_docs(name: str, mirror: Path | None) -> tuple[list[str], str, int]:
    """Documents to calibrate on, the split used, and how many evaluation documents were excluded."""
    spec = corpus(name)
    split = next((s for s in spec.calibration if available(s, mirror)), None)
    if split is None:
        raise DataError(f"no calibration split of {name!r} in the mirror {mirror} "
                        f"(looked for {[s.mirror for s in spec.calibration]}); choose another corpus")
    docs = load_split(split, mirror)[spec.field]
    used = split.mirror if mirror else ":".join(x for x in (split.hub_path, split.hub_name, split.hub_split) if x)
    excluded = 0
    if spec.exclude_eval_docs:
        held_out = set(evaluation_docs(name, mirror))
        kept = [d for d in docs if d not in held_out]
        excluded, docs = len(docs) - len(kept), kept
    if not any(d.strip() for d in docs):
        raise DataError(f"calibration corpus {name!r} ({split.mirror}) has no text")
    return docs, used, excluded
