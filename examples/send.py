"""Send an SMS and read it back.

export MSGINE_API_KEY=...            # printed by `msgine serve` on first start
export MSGINE_BASE_URL=http://127.0.0.1:8080/api/v1
python examples/send.py +256701521269 "Hello from MsGine"
"""

from __future__ import annotations

import sys

from msgine import MsGineClient, MsGineError, MsGineValidationError


def main() -> int:
    to, text = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else ("+256701521269", "Hello")
    try:
        with MsGineClient() as client:
            message = client.sms.send(to, text, from_="MsGine")
            print(f"sent {message.id}: {message.status}, {message.segments} segment(s)")
            current = client.messages.get(message.id)
            for recipient in current.recipients:
                print(f"  recipient status: {recipient.status}")
    except MsGineValidationError as exc:
        print(f"not sent, invalid input: {exc}", file=sys.stderr)
        return 2
    except MsGineError as exc:
        print(f"not sent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
