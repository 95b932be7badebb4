"""A request ID on every request and response.

The ID is ``request.state.request_id`` for the handler and is echoed in the
``X-Request-ID`` response header. An incoming ``X-Request-ID`` is kept when
``trust_incoming`` (the default) and it looks sane (1..128 visible ASCII
characters); otherwise a new one is made (``uuid4().hex`` unless
``generator`` is given).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from catzilla.middleware.base import Middleware
from catzilla.request import Request
from catzilla.response import Response

SANE = re.compile(r"[\x21-\x7e]{1,128}")


class RequestIDMiddleware(Middleware):
    def __init__(
        self, header_name: str = "X-Request-ID", generator: Callable[[], str] | None = None, trust_incoming: bool = True
    ) -> None:
        self.header_name = header_name
        self.key = header_name.lower()
        self.generator = generator or (lambda: uuid.uuid4().hex)
        self.trust_incoming = trust_incoming

    def before(self, request: Request) -> None:
        incoming = request.headers.get(self.key) if self.trust_incoming else None
        request.state.request_id = incoming if incoming and SANE.fullmatch(incoming) else self.generator()
        return None

    def after(self, request: Request, response: Response) -> None:
        response.headers[self.header_name] = request.state.request_id
        return None
