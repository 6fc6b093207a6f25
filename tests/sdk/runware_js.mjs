// Driver: the official @runware/sdk-js (Node), unchanged but for its `url`.
//
//     node runware_js.mjs WS_URL OPTIONS_JSON
//
// OPTIONS: key, prompt, numberResults, reference (a data URI or none), retries and timeoutMs (the SDK's own
// `globalMaxRetries` and `timeoutDuration`). Prints one JSON line: {"ok": true,
// "images": [...]} or {"ok": false, "error": {...}}; a call that does not settle within `timeout` seconds is
// {"type": "Timeout"}.
import { Runware } from "@runware/sdk-js";

const [url, raw] = process.argv.slice(2);
const options = JSON.parse(raw);

async function generate() {
  const runware = new Runware({
    apiKey: options.key,
    url,
    globalMaxRetries: options.retries ?? 1,
    ...(options.timeoutMs ? { timeoutDuration: options.timeoutMs } : {}),
  });
  await runware.ensureConnection();
  const images = await runware.requestImages({
    model: "google:4@3",
    positivePrompt: options.prompt ?? "a ripe banana on a desk",
    width: 1024,
    height: 1024,
    numberResults: options.numberResults ?? 2,
    includeCost: true,
    ...(options.reference ? { referenceImages: [options.reference] } : {}),
  });
  await runware.disconnect();
  return images;
}

function timeout(seconds) {
  return new Promise((_, reject) => setTimeout(() => reject({ type: "Timeout" }), seconds * 1000));
}

try {
  const images = await Promise.race([generate(), timeout(options.timeout ?? 30)]);
  console.log(JSON.stringify({ ok: true, images }));
} catch (error) {
  const shown = error instanceof Error ? { type: error.name, message: error.message } : { type: "thrown", value: error };
  console.log(JSON.stringify({ ok: false, error: shown }));
}
process.exit(0);
