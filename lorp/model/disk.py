"""The disk a run needs: the checkpoints it will write that neither the workspace nor DVC's cache holds yet, against
the free space of the workspace's and the cache's filesystems (`check_disk(free=)` takes a figure instead, for
the tests)."""

import re
import shutil
from collections.abc import Collection
from pathlib import Path

from lorp.data.sources import project_root
from lorp.model.resources import DTYPE_BYTES, GIB, ResourceError, Shape, gib, locked, read_record

DISK_MARGIN = GIB  # kept free beyond the estimate: logs, DVC's state database, tokenizer files, rounding


def cache_dir(root: Path) -> Path:
    """DVC's cache folder: cache.dir of .dvc/config.local or .dvc/config (relative to .dvc/), else .dvc/cache."""
    dvc = project_root(root) / ".dvc"
    for name in ("config.local", "config"):
        section = None
        for line in (dvc / name).read_text().splitlines() if (dvc / name).is_file() else ():
            if header := re.match(r"\s*\[(.*)\]", line):
                section = header.group(1).strip().strip("'\"")
            elif section == "cache" and (value := re.match(r"\s*dir\s*=\s*(.+)", line)):
                return (dvc / value.group(1).strip().strip("'\"")).resolve()
    return dvc / "cache"


def disk_need(root: Path, key: str, source: str, dtype: str, shape: Shape | None, plans: dict[str, int],
              recovered: dict[str, int] | None = None, rerun: Collection[str] = ()) -> tuple[int | None, str]:
    """(bytes, how estimated) of the checkpoints a run writes for one model that are neither in the workspace nor
    in DVC's cache: the dense checkpoint, one pruned checkpoint per plan ({plan name: blocks kept}) and one per
    recovered plan (the same size as its plan), none for a folder whose index.json already holds these names at
    this dtype unless its stage is in `rerun` (lorp.params.rerun: a rerun writes every checkpoint anew, and DVC
    keeps the old ones in its cache). None when nothing says the model's size (a hub model never fetched)."""
    info, size = read_record(root / "data" / key / "model_info.json"), DTYPE_BYTES[dtype]
    dense_dir = root / "models" / key / "dense"
    fetch, prune = locked(root, key)
    lock_dense = {o["path"]: o for o in fetch.get("outs", [])}.get(f"models/{key}/dense", {})
    lock_pruned = {o["path"]: o for o in prune.get("outs", [])}.get(f"models/{key}/pruned", {})
    if (dense_dir / "config.json").is_file() and info.get("source") == source:
        dense = sum(f.stat().st_size for f in dense_dir.rglob("*") if f.is_file())
        dense = dense * size // DTYPE_BYTES.get(info.get("dtype"), size)  # rescaled when the dtype changes
        written = 0 if info.get("dtype") == dtype else dense
        how = [f"dense {gib(dense)} (models/{key}/dense{', present' if not written else ''})"]
    elif fetch.get("params", {}).get("params.yaml") == {f"models.{key}.dtype": dtype,
                                                       f"models.{key}.source": source} and lock_dense.get("size"):
        dense = lock_dense["size"]
        md5 = str(lock_dense.get("md5"))  # DVC 3's cache layout: files/md5/<2 hex>/<rest>
        written = 0 if (cache_dir(root) / "files" / "md5" / md5[:2] / md5[2:]).exists() else dense
        how = [f"dense {gib(dense)} (dvc.lock{', in DVC cache' if not written else ''})"]
    elif shape is not None:
        dense = written = shape.parameters * size
        how = [f"dense {gib(dense)} ({shape.parameters / 1e6:.0f}M parameters x {size} bytes)"]
    else:
        return None, "unknown (no config or record of this source yet)"
    if f"fetch_model@{key}" in rerun and not written:
        written, how = dense, [f"dense {gib(dense)} (fetch_model reruns)"]
    recorded = len(read_record(root / "data" / key / "plans.json", list))
    for folder, stage, names in (("pruned", "prune", plans), ("recovered", "recover", recovered or {})):
        index = read_record(root / "models" / key / folder / "index.json")
        if not names or f"{stage}@{key}" not in rerun and index and set(index) == set(names) and all(
                r.get("dtype") == dtype for r in index.values()):
            how += [f"{len(names)} {folder} present"] if names else []
            continue
        if shape is not None and shape.block_parameters is not None:
            blocks = shape.block_parameters * size
            more = sum(dense - blocks + blocks * kept // shape.num_blocks for kept in names.values())
            how.append(f"{len(names)} {folder} {gib(more)} (block weights x kept/total blocks)")
        elif prune.get("params", {}).get("params.yaml") == {f"models.{key}.dtype": dtype} and recorded and (
                lock_pruned.get("size")):
            more = lock_pruned["size"] * len(names) // recorded
            how.append(f"{len(names)} {folder} {gib(more)} (dvc.lock: {recorded} pruned plans, scaled)")
        else:
            more = dense * len(names)
            how.append(f"{len(names)} {folder} <= {gib(more)} (each at most the dense size)")
        how[-1] += f", {stage} reruns" if f"{stage}@{key}" in rerun else ""
        written += more
    return written, ", ".join(how)


def disk_free(root: Path, free: int | None = None) -> list[tuple[str, int]]:
    """[(folders, free bytes)] per filesystem of the workspace and DVC's cache: one entry when they share one (the
    cache then hard-links the checkpoints, so they count once). `free` stands in for the machine's figure."""
    filesystems: dict[int, tuple[Path, list[Path]]] = {}
    for path in (root.resolve(), cache_dir(root)):
        existing = path  # a cache not created yet: the filesystem it will be on
        while not existing.exists():
            existing = existing.parent
        filesystems.setdefault(existing.stat().st_dev, (existing, []))[1].append(path)
    return [(" and ".join(map(str, paths)), shutil.disk_usage(existing).free if free is None else free)
            for existing, paths in filesystems.values()]


def check_disk(root: Path, needs: dict[str, int | None], free: int | None = None) -> str:
    """Refuse when the checkpoints to write + DISK_MARGIN exceed the free space of the workspace's or the cache's
    filesystem; the summary line otherwise."""
    total, spaces = sum(n for n in needs.values() if n), disk_free(root, free)
    for where, space in spaces:
        if total + DISK_MARGIN > space:
            parts = ", ".join(f"{k} {gib(n)}" for k, n in needs.items() if n)
            raise ResourceError(
                f"models / allocate.methods x allocate.budgets: this run writes about {gib(total)} of checkpoints "
                f"not in DVC's cache ({parts}) + {gib(DISK_MARGIN)} margin, but {where} has {gib(space)} free; "
                "free space (`dvc gc -w` drops superseded cache versions, `dvc checkout --relink` turns copied "
                "checkpoints back into links) or run fewer models, methods or budgets")
    return f"disk: ~{gib(total)} to write + {gib(DISK_MARGIN)} margin; " + "; ".join(
        f"{gib(space)} free on {where}" for where, space in spaces)
