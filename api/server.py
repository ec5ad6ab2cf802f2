"""uvicorn as `python -m api` runs it, with a bound on request header bytes.

uvicorn's httptools protocol (picked because it is installed: ~1.4x requests/s, bench_api) has
no header limit of its own: 64 MiB of headers were read into memory and handed to the app. This
subclass counts the bytes of each request until its headers are complete and, past
API_MAX_HEADER_BYTES, answers 431 and closes the connection. Memory per connection is then bounded
by the limit plus one socket read (256 KiB)."""

from __future__ import annotations

import logging

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import Settings, default

log = logging.getLogger("api.server")


class HeaderLimitedHttpTools(HttpToolsProtocol):
    max_header_bytes = default("max_header_bytes")  # set per server by header_limited()
    _header_bytes = 0
    _in_headers = True  # reading a request line and headers (not a body)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if not self._in_headers or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes:
            self._refuse()

    def on_headers_complete(self) -> None:
        self._in_headers, self._header_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_headers = True  # the next request on this connection starts with its headers
        super().on_message_complete()

    def _refuse(self) -> None:
        limit = self.max_header_bytes
        log.warning("request headers too large: refused", extra={"limit_bytes": limit, "client": str(self.client)})
        body = f"request line and headers are larger than {limit} bytes (API_MAX_HEADER_BYTES)\n".encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def header_limited(max_header_bytes: int) -> type[HttpToolsProtocol]:
    return type("HeaderLimitedHttpTools", (HeaderLimitedHttpTools,), {"max_header_bytes": max_header_bytes})


def serve(app, settings: Settings, host: str, port: int) -> None:
    # uvicorn's own loggers go through the JSON root handler; its access log is replaced by ours.
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=header_limited(settings.max_header_bytes),
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )
