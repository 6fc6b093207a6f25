"""Driver: the official `runware` 0.5.x SDK (Python, WebSocket only), unchanged but for its `url`.

    python runware_ws05.py WS_URL OPTIONS_JSON

OPTIONS: key, prompt, numberResults, reference (a data URI or none). Prints one JSON line: {"ok": true,
"images": [...]} or {"ok": false, "error": {"type", "code", "message"}}. A call that does not settle within
`timeout` seconds is reported as {"type": "Timeout"}: how the SDK fails when nobody answers.
"""


from runware import IImageInference, Runware, RunwareAPIError
from runware_driver import main


async def generate(url: str, options: dict) -> list:
    runware = Runware(api_key=options["key"], url=url)
    await runware.connect()
    try:
        request = IImageInference(
            model="google:4@3", positivePrompt=options.get("prompt", "a ripe banana on a desk"), width=1024,
            height=1024, numberResults=options.get("numberResults", 2), includeCost=True,
            outputType=options.get("outputType", "URL"),
            referenceImages=[options["reference"]] if options.get("reference") else [],
        )
        images = await runware.imageInference(requestImage=request)
        return [{key: value for key, value in vars(image).items() if value is not None} for image in images]
    finally:
        await runware.disconnect()


main(generate, RunwareAPIError, lambda error: {"code": error.code, "data": error.error_data})
