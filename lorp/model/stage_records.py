"""The seconds a stage's record keeps, read one way for the preflight's time estimate (lorp.model.resources) and the
report's stage-time table (lorp.report.provenance): the records keep them in three shapes."""


def recorded_seconds(record: dict) -> float:
    """"seconds" (a number, or per part with an optional "total"), one timing that every row of "plans" repeats
    (marginal_cost: counted once), or per entry (select_variants' {variant: {"seconds": ...}})."""
    if "seconds" in record:
        value = record["seconds"]
        return value.get("total", sum(value.values())) if isinstance(value, dict) else value
    if isinstance(record.get("plans"), dict):
        return max((r.get("seconds", 0) for r in record["plans"].values()), default=0)
    return sum(v["seconds"] for v in record.values() if isinstance(v, dict) and "seconds" in v)
