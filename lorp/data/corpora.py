"""The corpora the project calibrates and evaluates on, each split named both ways (hub ids and the mirror's
`folder/split`). Plain data, so params can check corpus names without importing `datasets`."""

from dataclasses import dataclass

from lorp.errors import LorpError


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


def corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}")
    return CORPORA[name]
