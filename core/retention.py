"""How long a finished job and its outputs are kept.

A job request may ask for its own ``retention_seconds`` (a job endpoint's JSON body, beside the
operation's fields; a batch's options, for every job of the batch): an integer from
``MIN_SECONDS`` to the server's limit (``Settings.retention_limit``:
``VISIONGATE_MAX_RETENTION_SECONDS``, never below the default). Without it the job gets the
server's default, ``VISIONGATE_RETENTION_SECONDS``. The job row keeps what was asked
(``jobs.retention_seconds``, null for the default).

A job's ``expires_at`` is set when it finishes: its finish time plus its retention, computed in
the SQL of the move that finishes it (``core.jobs.moves``). Until then it is unknown (null).
Past it the job's files are deleted (the sweeper's expiry) and every read of the job answers
404 with code ``expired``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticKnownError

from core.settings import get_settings

MIN_SECONDS = 60
DESCRIPTION = ("How long the job's outputs are kept after it finishes, in seconds (from 60 up to the "
               "server's maximum, VISIONGATE_MAX_RETENTION_SECONDS); default: the server's retention")


def limit_of(info: ValidationInfo) -> int:
    """The largest retention a request may ask for: the validation context's ``max_retention``
    when given (the API passes its settings'), else the settings'."""
    context = info.context or {}
    return int(context["max_retention"]) if "max_retention" in context else get_settings().retention_limit


def _at_most_the_limit(value: int | None, info: ValidationInfo) -> int | None:
    if value is not None and value > (limit := limit_of(info)):
        raise PydanticKnownError("less_than_equal", {"le": limit})
    return value


def _from_text(value: Any) -> Any:
    """Form and query fields are text: ``"3600"`` is 3600; anything else is left to the check."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value


# A JSON body's field: a JSON integer only (not "3600", 3600.0 or true).
RetentionSeconds = Annotated[int | None, Field(strict=True, ge=MIN_SECONDS, description=DESCRIPTION,
                                               examples=[86400]),
                             AfterValidator(_at_most_the_limit)]
# A field that may come from a form or a query string as well: decimal text is read as an integer.
RetentionField = Annotated[RetentionSeconds, BeforeValidator(_from_text)]
