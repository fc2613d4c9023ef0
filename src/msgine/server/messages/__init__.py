"""Messages: numbers, text, encodings and segments, the message lifecycle."""

from msgine.server.messages._text import (
    Encoding,
    encoding_of,
    gsm7_decode,
    gsm7_encode,
    split_segments,
)

__all__ = ["Encoding", "encoding_of", "gsm7_decode", "gsm7_encode", "split_segments"]
