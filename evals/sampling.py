"""Which items of a suite are scored: the `--sample N --seed S`, `--offset K`, `--limit N` and
`--ids a,b,c` options every suite takes.

Order of application: `ids` alone when given (exactly those items, in the order the suite holds
them; an unknown id is an error); otherwise drop the first `offset` items, draw a seeded random
sample of `sample` items from the rest (kept in the suite's order, so that a report reads like the
data), then keep the first `limit`. The same seed always draws the same items from the same data,
whatever else the run does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class UnknownIds(ValueError):
    """`--ids` named items the suite does not hold."""


class Selection(BaseModel):
    sample: int | None = Field(default=None, ge=1)
    seed: int = 0
    offset: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    ids: list[str] | None = None

    def apply(self, items: Sequence[T], key: Callable[[T], str], *, strict_ids: bool = True) -> list[T]:
        """The selected items. `strict_ids=False` lets a suite split into parts (BFCL's
        categories) select its share of `ids` from each part and check the whole set itself."""
        if self.ids:
            wanted = set(self.ids)
            chosen = [item for item in items if key(item) in wanted]
            if strict_ids:
                missing = wanted - {key(item) for item in chosen}
                if missing:
                    raise UnknownIds(f"unknown id(s): {', '.join(sorted(missing))}")
            return chosen
        rest = list(items[self.offset :])
        if self.sample is not None and self.sample < len(rest):
            picked = sorted(random.Random(self.seed).sample(range(len(rest)), self.sample))
            rest = [rest[i] for i in picked]
        return rest[: self.limit] if self.limit else rest

    def describe(self) -> str:
        """One line for a report's notes: how the items were chosen."""
        if self.ids:
            return f"The {len(self.ids)} item(s) named by --ids."
        parts = []
        if self.offset:
            parts.append(f"from item {self.offset} on")
        if self.sample is not None:
            parts.append(f"a seeded random sample of {self.sample} (seed {self.seed})")
        if self.limit:
            parts.append(f"the first {self.limit}")
        return ("Items: " + ", then ".join(parts) + ".") if parts else "All items."


def parse_ids(text: str | None) -> list[str] | None:
    """`a,b, c` -> ["a", "b", "c"]; None or blank -> None."""
    if not text:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    return ids or None
