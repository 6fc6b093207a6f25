// Drive the Vercel AI SDK's Google provider (@ai-sdk/google with ai), unchanged but for its base URL, and print
// what it saw as one JSON line.
//
//   node ai_sdk_google.mjs BASE_URL SCENARIO [OPTIONS_JSON]
//
// BASE_URL is the provider's baseURL, which includes the API version (http://127.0.0.1:PORT/gemini/v1beta).
// Run from a folder whose node_modules holds @ai-sdk/google and ai (tests/sdk/drivers.py copies it there).
// OPTIONS_JSON may set model, prompt, n, aspectRatio, imageSize, seed and maxRetries (default 0: the SDK's own
// default of 2 retries with 2 s backoff would make a failing test slow). Exits 0 either way.
import { createGoogle } from '@ai-sdk/google';
import { APICallError, generateImage, generateText, NoImageGeneratedError, RetryError } from 'ai';
import { imageSize } from './image_size.mjs';

const [baseURL, scenario, rawOptions] = process.argv.slice(2);
const options = rawOptions ? JSON.parse(rawOptions) : {};
const google = createGoogle({ baseURL, apiKey: options.apiKey ?? 'sim-gemini-key' });
const modelId = options.model ?? 'gemini-3.1-flash-image-preview';
const prompt = options.prompt ?? 'A banana astronaut floating above the Earth';
const maxRetries = options.maxRetries ?? 0;

const describeFile = (file) => ({ mediaType: file.mediaType, size: imageSize(file.uint8Array) });

const scenarios = {
  async generate_image() {
    const imageConfig = options.imageSize ? { imageConfig: { imageSize: options.imageSize } } : {};
    const result = await generateImage({
      model: google.image(modelId), prompt, n: options.n ?? 1, maxRetries,
      ...(options.aspectRatio ? { aspectRatio: options.aspectRatio } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      providerOptions: { google: imageConfig },
    });
    return { images: result.images.map(describeFile), warnings: result.warnings, responses: result.responses.length };
  },
  async generate_text() {
    const result = await generateText({
      model: google(modelId), prompt, maxRetries,
      providerOptions: { google: { responseModalities: ['TEXT', 'IMAGE'], ...(options.aspectRatio ? { imageConfig: { aspectRatio: options.aspectRatio } } : {}) } },
    });
    return {
      text: result.text, reasoningText: result.reasoningText ?? null, finishReason: result.finishReason,
      files: result.files.map(describeFile), usage: result.usage,
    };
  },
};

let result;
try {
  result = { ok: true, ...(await scenarios[scenario]()) };
} catch (error) {
  const cause = RetryError.isInstance(error) ? error.lastError : error;
  result = {
    ok: false,
    error: {
      type: error.constructor?.name, name: error.name, message: error.message,
      noImage: NoImageGeneratedError.isInstance(error),
      ...(APICallError.isInstance(cause) ? { statusCode: cause.statusCode, isRetryable: cause.isRetryable, data: cause.data ?? null, responseBody: cause.responseBody } : {}),
    },
  };
}
console.log(JSON.stringify(result));
