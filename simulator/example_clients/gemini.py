"""Google's own Gemini API (Nano Banana models): a careful client from Google's docs.

What the docs say, and what this client does with it (ai.google.dev: image generation, API errors and
troubleshooting, rate limits; the google-genai SDK's behaviour):

- `POST /v1beta/models/{model}:generateContent` with header `x-goog-api-key` answers the image itself, as
  base64 in `candidates[0].content.parts[].inlineData`: one request, nothing to poll, no URL to download.
  Parts flagged `thought: true` are the model's interim drafts, not the answer.
- A refused prompt is **not** an HTTP error: 200 with `promptFeedback.blockReason` and no candidates. A
  withheld image is a candidate whose `finishReason` is `IMAGE_SAFETY` (or `SAFETY`, `PROHIBITED_CONTENT`,
  …) and which carries no image. Both raise `ContentBlockedError`, never retried.
- Errors are `{"error": {"code", "message", "status", "details"}}`. A 429 `RESOURCE_EXHAUSTED` sends **no
  `Retry-After` header**: the wait is `RetryInfo.retryDelay` in `details` (a Duration, `"38.6s"`), which
  this client honours. 402 (or a 429 saying the prepayment credits are depleted) is an empty wallet.
- No idempotency key exists and every call is billed: a call whose answer was lost is not resent
  (`SubmitUncertainError`). A 5xx answer means nothing was generated, so it is retried with backoff.
- A generation takes seconds to a minute (4K on Pro); the server's own deadline is 10 minutes, so the
  per-request timeout here is generous.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from simulator.example_clients.common import (
    BaseClient,
    ContentBlockedError,
    GenerationFailedError,
    Image,
    InsufficientCreditsError,
    NanoBananaError,
    Result,
    retry_after_seconds,
)

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
GENERATION_SECONDS = 180.0  # per request: the answer arrives only once the image is made
BLOCK_REASONS = frozenset({"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
                           "SPII", "RECITATION", "IMAGE_RECITATION"})


class GeminiClient(BaseClient):
    provider = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    api_version = "v1beta"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key}

    def generate(
        self,
        prompt: str,
        *,
        model: str = "gemini-3.1-flash-image-preview",
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        **generation_config: Any,
    ) -> Result:
        """One `generateContent` call; the images come back in the answer. Other `generationConfig` members
        (`seed`, `temperature`, …) are passed as Google spells them."""
        image_config = {name: value for name, value in (("aspectRatio", aspect_ratio), ("imageSize", image_size))
                        if value is not None}
        config: dict[str, Any] = {"responseModalities": ["IMAGE"], **generation_config}
        if image_config:
            config["imageConfig"] = image_config
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": config}
        answer = self.request("POST", f"/{self.api_version}/models/{model}:generateContent", json_body=body,
                              idempotent=False, timeout=GENERATION_SECONDS)
        return self._result(answer, model)

    def _result(self, answer: dict[str, Any], model: str) -> Result:
        response_id = str(answer.get("responseId", ""))
        blocked = (answer.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise ContentBlockedError(f"gemini: prompt blocked ({blocked})", code=blocked, body=answer)
        candidate = (answer.get("candidates") or [{}])[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        images = [Image(base64.b64decode(part["inlineData"]["data"]), "", part["inlineData"].get("mimeType", ""),
                        id=response_id)
                  for part in parts if "inlineData" in part and not part.get("thought")]
        if not images:
            reason = candidate.get("finishReason")
            cls = ContentBlockedError if reason in BLOCK_REASONS else GenerationFailedError
            raise cls(f"gemini: no image ({reason}: {candidate.get('finishMessage', '')})", code=reason, body=answer)
        return Result(self.provider, response_id, str(answer.get("modelVersion", model)), images, raw=answer)

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):  # the front end's HTML page (502)
            return None, body if isinstance(body, str) else None
        return error.get("status"), error.get("message")

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if status == 429 and "prepayment credits are depleted" in (message or ""):
            return InsufficientCreditsError  # what the 402 used to be
        return super().error_class(status, code, message, body)

    def retry_after(self, response: httpx.Response, body: Any) -> float | None:
        """Google writes the wait in the body (`RetryInfo.retryDelay`, e.g. `"38.6s"`), not in a header."""
        error = body.get("error") if isinstance(body, dict) else None
        for detail in (error or {}).get("details") or []:
            if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
                try:
                    return max(0.0, float(str(detail.get("retryDelay", "")).removesuffix("s")))
                except ValueError:
                    break
        return retry_after_seconds(response)
