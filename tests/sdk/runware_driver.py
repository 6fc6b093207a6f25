"""What the two Python Runware drivers share: arguments in, one JSON line out (imported from the drivers' folder).

Each driver gives `generate(url, options)` and how to describe its SDK's own error; a call that does not settle
within `options["timeout"]` seconds is reported as {"type": "Timeout"}.
"""

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any


def main(generate: Callable[[str, dict], Awaitable[list]], error_type: type[Exception],
         describe: Callable[[Any], dict]) -> None:
    async def run() -> None:
        url, options = sys.argv[1], json.loads(sys.argv[2])
        try:
            images = await asyncio.wait_for(generate(url, options), options.get("timeout", 30))
            print(json.dumps({"ok": True, "images": images}))
        except error_type as error:
            print(json.dumps({"ok": False, "error": {"type": error_type.__name__, **describe(error)}}))
        except TimeoutError:
            print(json.dumps({"ok": False, "error": {"type": "Timeout"}}))
        except Exception as error:  # the SDK's other documented failures (0.5.x: ConnectionError)
            print(json.dumps({"ok": False, "error": {"type": type(error).__name__, "message": str(error)}}))

    asyncio.run(run())
