"""Messages between the engine and its Ray driver process: length-prefixed pickles on pipes.

Both ends are this engine's own code on the same machine (the driver is a child it started), so
pickle is safe here; a message is bounded in size, and the reader is bounded in time, so a
driver that hangs or dies is noticed rather than waited on.
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import time
from typing import IO, Any

HEADER = struct.Struct("!Q")
MAX_MESSAGE_BYTES = 4 << 30


def send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


class Reader:
    """Reads whole messages from a pipe, each within a time bound."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.fd = stream.fileno()
        self.buffer = bytearray()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def recv(self, timeout_s: float | None) -> Any:
        """The next message; TimeoutError when none came in `timeout_s`, EOFError when the pipe closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if len(self.buffer) >= HEADER.size:
                (size,) = HEADER.unpack_from(self.buffer)
                if size > MAX_MESSAGE_BYTES:
                    raise EOFError(f"a message of {size} bytes (the limit is {MAX_MESSAGE_BYTES})")
                if len(self.buffer) >= HEADER.size + size:
                    data = bytes(self.buffer[HEADER.size:HEADER.size + size])
                    del self.buffer[:HEADER.size + size]
                    return pickle.loads(data)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            if not self.selector.select(left):
                continue
            block = os.read(self.fd, 1 << 20)
            if not block:
                raise EOFError("the pipe closed")
            self.buffer += block

    def close(self) -> None:
        self.selector.close()
