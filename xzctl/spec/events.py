"""Known events of the fleet spec: holidays and campaigns an operator knows ahead, for the capacity forecast.

An event multiplies the devices expected in its regions (all regions when none is named) over its dates (UTC,
both days included). The forecast divides the history's hours by it (a past holiday does not teach the model a
dip) and multiplies the forecast's hours by it (the coming holiday reaches the forecast and the pre-scaling schedule).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from xzctl.errors import BadInputError
from xzctl.spec.base import DNS_LABEL, Strict
from xzctl.spec.types import LabelText

MAX_EVENT_DAYS = 92  # a quarter: longer is a new level, which the forecast learns from the history itself
MAX_EVENTS = 500


class KnownEvent(Strict):
    name: LabelText
    start: date
    end: date  # included
    regions: list[Annotated[str, Field(pattern=DNS_LABEL)]] = Field(default_factory=list, max_length=100)
    factor: Annotated[float, Field(gt=0, le=20, description="expected devices / usual devices")]

    @model_validator(mode="after")
    def _dates(self) -> KnownEvent:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.end - self.start).days + 1 > MAX_EVENT_DAYS:
            raise ValueError(f"an event lasts at most {MAX_EVENT_DAYS} days")
        return self

    def span(self) -> tuple[float, float]:
        """[first second, first second after) in unix seconds, UTC."""
        begin = datetime.combine(self.start, time(), UTC)
        return begin.timestamp(), (datetime.combine(self.end, time(), UTC) + timedelta(days=1)).timestamp()

    def applies_to(self, region: str) -> bool:
        return not self.regions or region in self.regions


KnownEvents = Annotated[list[KnownEvent], Field(max_length=MAX_EVENTS)]


MAX_EVENTS_FILE_BYTES = 1024 * 1024


def read_events(path: Path) -> list[KnownEvent]:
    """Known events from a YAML file (a list of events, as under the spec's `known_events`); one line on error."""
    import yaml
    from pydantic import TypeAdapter, ValidationError

    try:
        with path.open("rb") as f:
            data = f.read(MAX_EVENTS_FILE_BYTES + 1)
    except OSError as exc:
        raise BadInputError(f"--events {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_EVENTS_FILE_BYTES:
        raise BadInputError(f"--events {path}: more than {MAX_EVENTS_FILE_BYTES:,} bytes")
    try:
        raw = yaml.safe_load(data)
        return TypeAdapter(KnownEvents).validate_python(raw or [])
    except yaml.YAMLError as exc:
        raise BadInputError(f"--events {path}: not YAML ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"--events {path}: {where}: {first['msg']}") from None
