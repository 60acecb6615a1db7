"""The talkinghead feed as a bench client reads it: the parts of a ``multipart/x-mixed-replace`` response."""
from __future__ import annotations

from typing import Iterator

import requests


def feed_parts(response: requests.Response) -> Iterator[tuple[dict[str, str], bytes]]:
    """(headers with lower-case names, image bytes) of each part, as it arrives (parts carry Content-Length)."""
    buf = bytearray()
    for chunk in response.iter_content(65536):
        buf += chunk
        while True:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                break
            headers = {}
            for line in bytes(buf[:head]).split(b"\r\n")[1:]:  # the first line is the boundary
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode()] = value.strip().decode()
            end = head + 4 + int(headers["content-length"])
            if len(buf) < end + 2:
                break
            data = bytes(buf[head + 4:end])
            del buf[:end + 2]
            yield headers, data
