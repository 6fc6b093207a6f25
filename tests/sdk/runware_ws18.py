"""Driver: the official `runware-sdk` 1.x SDK (Python) over its WebSocket transport, unchanged but for its URL.

    python runware_ws18.py WS_URL OPTIONS_JSON

OPTIONS: key, prompt, numberResults, reference (a data URI or none), deliveryMethod (the SDK's default, async,
when absent). `taskType` is passed, as the SDK's README advises, so it looks nothing up online. Prints one JSON
line: {"ok": true, "images": [...]} or {"ok": false, "error": {"type", "code", "message"}}.
"""


from runware import Runware
from runware.errors import RunwareError
from runware_driver import main


async def generate(url: str, options: dict) -> list:
    params = {"taskType": "imageInference", "model": "google:4@3", "width": 1024, "height": 1024,
              "positivePrompt": options.get("prompt", "a ripe banana on a desk"),
              "numberResults": options.get("numberResults", 2), "includeCost": True}
    if options.get("reference"):
        params["inputs"] = {"referenceImages": [options["reference"]]}
    if options.get("deliveryMethod"):
        params["deliveryMethod"] = options["deliveryMethod"]
    async with Runware(api_key=options["key"], transport="websocket", ws_base_url=url, max_retries=1) as client:
        return await client.run(params)


main(generate, RunwareError, lambda error: {"code": error.code, "message": str(error)})
