"""The one home of the zero-shot task list: each task's lm-eval YAML, its split in the dataset mirror and the
report's short name. Params, the zero-shot stage and the report's tables read it from here."""

from typing import NamedTuple


class Task(NamedTuple):
    yaml: str  # installed YAML under lm_eval/tasks
    mirror: str | None  # the mirror's `folder/split`, None when the mirror has no copy
    label: str  # the report's column name


# The paper's nine zero-shot tasks plus piqa.
TASKS: dict[str, Task] = {
    "arc_easy": Task("arc/arc_easy.yaml", "ai2_arc-ARC-Easy/test", "ARC-e"),
    "arc_challenge": Task("arc/arc_challenge.yaml", "ai2_arc-ARC-Challenge/test", "ARC-c"),
    "hellaswag": Task("hellaswag/hellaswag.yaml", None, "HellaSwag"),
    "winogrande": Task("winogrande/default.yaml", "winogrande-winogrande_xl/validation", "WinoG"),
    "boolq": Task("super_glue/boolq/default.yaml", "super_glue-boolq/validation", "BoolQ"),
    "openbookqa": Task("openbookqa/openbookqa.yaml", "openbookqa-main/test", "OBQA"),
    "rte": Task("glue/rte/default.yaml", "glue-rte/validation", "RTE"),
    "copa": Task("super_glue/copa/default.yaml", "super_glue-copa/validation", "COPA"),
    "race": Task("race/race.yaml", "race-high/test", "RACE"),
    "piqa": Task("piqa/piqa.yaml", "piqa/validation", "PIQA"),
}
LONG_PASSAGES = ("boolq", "race")  # left out of the CPU default: their passages dominate the cost
DEFAULT_TASKS = tuple(t for t in TASKS if t not in LONG_PASSAGES)
