"""Each task's seconds per item on DynamoDB: one item a task (`TASK#<name>`, `STATS`).

DynamoDB's update expressions add and subtract but do not multiply, so the moving average is
read, computed and written back on the condition that nobody wrote it in between; a writer that
loses that race drops its measurement (the contract allows it: the next one comes soon).
"""

from __future__ import annotations

from fanout.backends.aws.table import Item, Table


def stats_key(task: str) -> Item:
    return {"pk": f"TASK#{task}", "sk": "STATS"}


class DynamoTaskStats:
    """Implements TaskStats on the one table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def seconds_per_item(self, task: str) -> float | None:
        # Eventually consistent: half the price, and a second-old average sizes chunks as well.
        item = self.table.get(stats_key(task), consistent=False)
        return None if item is None else float(item["seconds_per_item"])

    def record_time(self, task: str, seconds_per_item: float, weight: float, now: float) -> None:
        key = stats_key(task)
        item = self.table.get(key)
        if item is None:
            self.table.put(
                {**key, "kind": "task_stats", "seconds_per_item": seconds_per_item, "at": now},
                "attribute_not_exists(pk)",
            )
            return
        average = float(item["seconds_per_item"])
        moved = average + weight * (seconds_per_item - average)
        self.table.put(
            {**item, "seconds_per_item": moved, "at": now},
            "#at = :seen",
            names={"#at": "at"},
            values={":seen": item["at"]},
        )
