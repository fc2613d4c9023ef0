"""Messages: numbers, text, encodings and segments, the message lifecycle."""
