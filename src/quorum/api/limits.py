"""Refuse request bodies above the configured size before they are read into memory.

NOTE: Starlette's RequestBodyLimitMiddleware answers a declared oversize body with a plain-text
413 that replaces any response, so our JSON error shape would be lost; hence this small one.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quorum.api.errors import PayloadTooLarge, error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            message = f"the request body exceeds {self.max_bytes} bytes"
            await error_response(413, "payload_too_large", message)(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # a chunked body has no Content-Length to check up front
                raise PayloadTooLarge(self.max_bytes)
            return message

        return counted
