"""Request bodies read strictly, so that bad text is a 422 naming the field and never a 500.

Python's ``json`` module accepts more than JSON: ``NaN``, ``Infinity`` and numbers that overflow
to ``inf`` (``1e400``), none of which PostgreSQL's ``jsonb`` or a strict JSON encoder can hold,
and it decodes ``"\\ud800"`` to a lone surrogate that cannot be encoded as UTF-8 at all.
PostgreSQL text also cannot hold NUL (``"\\u0000"``). Every route of the API is a
``StrictRoute``: before FastAPI reads the body, the JSON (or form) is parsed once here, and

* non-finite numbers are a 422 ``json_invalid`` ("… is not a JSON number"),
* a body that is not UTF-8 is a 422 ``json_invalid``,
* a string holding NUL or a lone surrogate is a 422 naming the field (``loc: ["body", …]``).

The parsed body is cached on the request (Starlette's own cache), so FastAPI does not parse it a
second time. The walk over the parsed value runs only when the raw bytes contain an escape that
could produce such a character, so ordinary requests pay nothing for it.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_JSON_TYPES = ("application/json",)


class BadJSON(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON(f"{text[:40]} is out of range: JSON numbers must be finite (at most about 1.8e308)")
    return value


def _no_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON number")


def loads(body: bytes) -> Any:
    """``json.loads`` that refuses what JSON (RFC 8259) and PostgreSQL cannot hold as numbers."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJSON(f"the body is not UTF-8 text (byte {exc.start})") from None
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


def _may_hold_bad_text(raw: bytes) -> bool:
    # NUL and lone surrogates can only reach a parsed JSON string through a \u escape.
    return b"\\u" in raw


def bad_text_errors(value: Any, loc: tuple[Any, ...] = ("body",)) -> list[dict[str, Any]]:
    """422 items for every string (key or value) holding NUL or an unpaired surrogate."""
    errors: list[dict[str, Any]] = []

    def check(text: str, where: tuple[Any, ...]) -> None:
        if "\x00" in text:
            errors.append({"type": "string_nul", "loc": where, "input": text,
                           "msg": "text may not contain the NUL character (\\u0000)"})
            return
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            errors.append({"type": "string_unicode", "loc": where, "input": text,
                           "msg": "text contains an unpaired UTF-16 surrogate (e.g. \\ud800 alone), "
                                  "which is not a Unicode character"})

    def walk(node: Any, where: tuple[Any, ...], depth: int) -> None:
        if len(errors) >= 20 or depth > 64:
            return
        if isinstance(node, str):
            check(node, where)
        elif isinstance(node, dict):
            for key, item in node.items():
                check(key, (*where, key)) if isinstance(key, str) else None
                walk(item, (*where, key), depth + 1)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*where, index), depth + 1)

    walk(value, loc, 0)
    return errors


class StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


async def check_body(request: StrictRequest) -> None:
    """Parse the body the way the route will, raising a 422 for what must not get further."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in _JSON_TYPES or ctype.endswith("+json"):
        raw = await request.body()
        if not raw:
            return
        try:
            parsed = await request.json()
        except BadJSON as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "input": None,
                                           "msg": f"JSON decode error: {exc}"}]) from None
        except ValueError:
            return  # plain syntax errors: FastAPI answers its own 422 json_invalid with the position
        if _may_hold_bad_text(raw):
            errors = bad_text_errors(parsed)
            if errors:
                raise RequestValidationError(errors)
    elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        errors = bad_text_errors({k: v for k, v in form.multi_items() if isinstance(v, str)})
        if errors:
            raise RequestValidationError(errors)


class StrictRoute(APIRoute):
    """An ``APIRoute`` whose body is checked by ``check_body`` before FastAPI reads it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not ({"POST", "PUT", "PATCH"} & set(self.methods or ())):
            return handler

        async def strict_handler(request: Request) -> Response:
            request = StrictRequest(request.scope, request.receive)
            await check_body(request)
            return await handler(request)

        return strict_handler
