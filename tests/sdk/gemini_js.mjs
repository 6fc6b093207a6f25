// Drive the official @google/genai SDK, unchanged but for its base URL, and print what it saw as one JSON line.
//
//   node gemini_js.mjs BASE_URL SCENARIO [OPTIONS_JSON]
//
// Run from a folder whose node_modules holds @google/genai (tests/sdk/drivers.py copies the script there).
// OPTIONS_JSON may set model, prompt, aspectRatio, imageSize, apiVersion (default v1beta), apiKey, polls and
// pollMs. The result is {"ok": true, ...} or {"ok": false, "error": {...}} with what users read from ApiError
// (name, status, message: the JSON body as text). Exits 0 either way.
import { GoogleGenAI } from '@google/genai';
import { OAuth2Client } from 'google-auth-library';
import { deflateSync } from 'node:zlib';
import { imageSize } from './image_size.mjs';

const [baseUrl, scenario, rawOptions] = process.argv.slice(2);
const options = rawOptions ? JSON.parse(rawOptions) : {};
const model = options.model ?? 'gemini-3.1-flash-image-preview';
const prompt = options.prompt ?? 'A banana astronaut floating above the Earth';
const apiKey = options.apiKey ?? 'sim-gemini-key';
const httpOptions = { baseUrl, apiVersion: options.apiVersion ?? 'v1beta' };

function client() {
  return new GoogleGenAI({ apiKey, httpOptions });
}

function config() {
  const imageConfig = {};
  if (options.aspectRatio) imageConfig.aspectRatio = options.aspectRatio;
  if (options.imageSize) imageConfig.imageSize = options.imageSize;
  return {
    responseModalities: options.modalities ?? ['TEXT', 'IMAGE'],
    ...(Object.keys(imageConfig).length ? { imageConfig } : {}),
    ...(options.candidateCount ? { candidateCount: options.candidateCount } : {}),
  };
}

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

// A small real PNG to send as a reference image (no imaging library here).
function png(width, height) {
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, 0xc8)]);
  const chunk = (kind, data) => {
    const body = Buffer.concat([Buffer.from(kind), data]);
    const length = Buffer.alloc(4); length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0); header.writeUInt32BE(height, 4); header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(Array(height).fill(row)))), chunk('IEND', Buffer.alloc(0))]);
}

function describe(response) {
  const parts = (response.candidates?.[0]?.content?.parts ?? []).map((part) => {
    const entry = { thought: Boolean(part.thought), signed: part.thoughtSignature !== undefined };
    if (part.inlineData) {
      return { ...entry, kind: 'image', mimeType: part.inlineData.mimeType, size: imageSize(Buffer.from(part.inlineData.data, 'base64')) };
    }
    return { ...entry, kind: 'text', text: part.text };
  });
  return {
    parts,
    text: response.text ?? null,
    // response.data joins atob() of every inlineData: it throws on URL-safe base64 (dossier §4.1)
    dataBytes: response.data ? Buffer.from(response.data, 'base64').length : null,
    finishReason: response.candidates?.[0]?.finishReason ?? null,
    candidates: response.candidates ? response.candidates.length : null,
    blockReason: response.promptFeedback?.blockReason ?? null,
    modelVersion: response.modelVersion ?? null,
    responseId: response.responseId ?? null,
    usage: response.usageMetadata ?? null,
  };
}

// The JS BatchJob has no `done`; its state is already rewritten to JOB_STATE_* like Python's.
const TERMINAL = new Set(['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED', 'JOB_STATE_EXPIRED']);

async function waitFor(ai, name) {
  let job = await ai.batches.get({ name });
  for (let poll = 0; poll < (options.polls ?? 200) && !TERMINAL.has(job.state); poll++) {
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
    job = await ai.batches.get({ name });
  }
  return job;
}

const inlineRequests = () => [1, 2].map((n) => ({ contents: `${prompt}, take ${n}`, metadata: { key: `take-${n}` }, config: config() }));

const scenarios = {
  async generate() {
    return describe(await client().models.generateContent({ model, contents: prompt, config: config() }));
  },
  async stream() {
    const events = [];
    for await (const chunk of await client().models.generateContentStream({ model, contents: prompt, config: config() })) {
      events.push(describe(chunk));
    }
    return { events: events.length, parts: events.flatMap((e) => e.parts), finishReason: events.at(-1)?.finishReason ?? null, usage: events.at(-1)?.usage ?? null };
  },
  async edit_inline() {
    const reference = { inlineData: { mimeType: 'image/png', data: png(64, 48).toString('base64') } };
    return describe(await client().models.generateContent({ model, contents: [reference, { text: prompt }], config: config() }));
  },
  async edit_with_file() {
    const ai = client();
    const file = await ai.files.upload({ file: new Blob([png(64, 48)], { type: 'image/png' }), config: { mimeType: 'image/png', displayName: 'reference.png' } });
    const reference = { fileData: { fileUri: file.uri, mimeType: file.mimeType } };
    return { file, ...describe(await ai.models.generateContent({ model, contents: [reference, { text: prompt }], config: config() })) };
  },
  async files() {
    const ai = client();
    const file = await ai.files.upload({ file: new Blob([png(8, 8)], { type: 'image/png' }), config: { mimeType: 'image/png', displayName: 'tiny.png' } });
    const fetched = await ai.files.get({ name: file.name });
    const listed = [];
    for await (const item of await ai.files.list({ config: { pageSize: 10 } })) listed.push(item.name);
    await ai.files.delete({ name: file.name });
    let afterDelete = 'still there';
    try { await ai.files.get({ name: file.name }); } catch (error) { afterDelete = { name: error.name, status: error.status }; }
    return { uploaded: file, state: fetched.state, listed, afterDelete };
  },
  async batch_inline() {
    const ai = client();
    const created = await ai.batches.create({ model, src: inlineRequests(), config: { displayName: 'sim-inline' } });
    const job = await waitFor(ai, created.name);
    const listed = [];
    for await (const item of await ai.batches.list({ config: { pageSize: 5 } })) listed.push(item.name);
    await ai.batches.delete({ name: created.name });
    const results = (job.dest?.inlinedResponses ?? []).map((item) => ({ key: item.metadata?.key, ...(item.response ? describe(item.response) : { error: item.error }) }));
    return { createdState: created.state, listed, name: job.name, state: job.state, results };
  },
  async batch_cancel() {
    const ai = client();
    const created = await ai.batches.create({ model, src: inlineRequests(), config: { displayName: 'sim-cancel' } });
    await ai.batches.cancel({ name: created.name });
    const job = await ai.batches.get({ name: created.name });
    return { name: job.name, state: job.state };
  },
  async vertex_express() {
    const ai = new GoogleGenAI({ vertexai: true, apiKey, httpOptions: { ...httpOptions, apiVersion: options.apiVersion ?? 'v1' } });
    return describe(await ai.models.generateContent({ model, contents: prompt, config: config() }));
  },
  async vertex_project() {
    // A ready-made access token: google-auth-library never reaches Google for it.
    const authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: options.token ?? 'sim-access-token', expiry_date: Date.now() + 3600e3 });
    const ai = new GoogleGenAI({
      vertexai: true, project: options.project ?? 'sim-project', location: options.location ?? 'us-central1',
      googleAuthOptions: { authClient }, httpOptions: { ...httpOptions, apiVersion: options.apiVersion ?? 'v1' },
    });
    return describe(await ai.models.generateContent({ model, contents: prompt, config: config() }));
  },
};

let result;
try {
  result = { ok: true, ...(await scenarios[scenario]()) };
} catch (error) {
  result = { ok: false, error: { type: error.constructor?.name, name: error.name, status: error.status, message: error.message } };
}
console.log(JSON.stringify(result));
