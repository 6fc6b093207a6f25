// The control plane's JSON, the live journal stream, and a loaded session file behind one interface: every view
// reads `source.get(name)`, whether the data is live or comes from a file someone attached to a bug report.

const TOKEN_KEY = "nanobanana-sim-token";

export class Unauthorized extends Error {}

export class Refused extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// A token in the address's fragment (`/_sim/ui#token=…`) never reaches a server log; take it and drop it.
export function tokenFromFragment() {
  const match = location.hash.match(/token=([^&]+)/);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname);
}

async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(`/_sim${path}`, init);
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Refused(response.status, value);
  return value;
}

export const api = {
  get: (path) => call("GET", path),
  send: (method, path, body) => call(method, path, body),
  // An image of the gallery: fetched with the token (an <img src> could not send it), shown as a blob: URL.
  async image(blobId) {
    const response = await fetch(`/_sim/gallery/${encodeURIComponent(blobId)}`, { headers: headers() });
    if (!response.ok) throw new Refused(response.status, null);
    return URL.createObjectURL(await response.blob());
  },
  async download(path) {
    const response = await fetch(`/_sim${path}`, { headers: headers() });
    if (!response.ok) throw new Refused(response.status, null);
    return response.blob();
  },
};

// Server-Sent Events over fetch (EventSource cannot send the Authorization header). Reconnects with
// `after=<last seq>` so nothing recorded meanwhile is missed. Returns a function that stops it.
export function subscribe(onEvent, onStatus, lastSeq) {
  let stopped = false;
  let controller = null;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const after = lastSeq();
        const query = after === null ? "" : `?after=${after}`;
        const response = await fetch(`/_sim/journal/stream${query}`, { headers: headers(), signal: controller.signal });
        if (response.status === 401) { onStatus("locked"); return; }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        onStatus("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) name = line.slice(7);
              else if (line.startsWith("data: ")) data.push(line.slice(6));
            }
            if (data.length) onEvent(name, JSON.parse(data.join("\n")));
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      if (!stopped) {
        onStatus("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
  run();
  return () => { stopped = true; if (controller) controller.abort(); };
}

// Where the views read from: the running simulator, or a session file loaded back for reading.
export class LiveSource {
  constructor() {
    this.live = true;
    this.images = new Map(); // blob ID → its object URL: a redraw (every second on a real clock) refetches nothing
  }
  timelines() { return api.get("/timelines"); }
  gallery() { return api.get("/gallery"); }
  webhooks() { return api.get("/webhooks"); }
  credits() { return api.get("/ledger"); }
  faults() { return api.get("/faults"); }
  windows() { return api.get("/limits/windows"); }
  scenarios() { return api.get("/scenarios"); }
  info() { return api.get("/"); }
  async rows() { return (await api.get("/journal?summary=true&limit=2000")).entries; }
  entry(seq) { return api.get(`/journal/${seq}?masked=true`); }
  async search(text) {
    const found = await api.get(`/journal?summary=true&search=${encodeURIComponent(text)}`);
    return new Set(found.entries.map((e) => e.seq));
  }
  image(image) {
    if (!this.images.has(image.blob_id)) {
      const loading = api.image(image.blob_id);
      loading.catch(() => this.images.delete(image.blob_id));
      this.images.set(image.blob_id, loading);
    }
    return this.images.get(image.blob_id);
  }
}

export class FileSource {
  constructor(session, name) {
    if (!session || session.format !== "nanobanana-sim-session") {
      throw new Error("not a nanobanana-sim session file (its format field is missing)");
    }
    this.live = false;
    this.name = name;
    this.session = session;
    this.bySeq = new Map(session.journal.map((e) => [e.seq, e]));
  }
  timelines() { return this.session.timelines; }
  gallery() { return this.session.gallery; }
  webhooks() { return this.session.webhooks; }
  credits() { return this.session.credits; }
  faults() { return this.session.faults; }
  windows() { return this.session.windows; }
  scenarios() { return { loaded: this.session.scenarios, shipped: [] }; }
  info() { return { ...this.session.info, control_token: false }; }
  rows() { return this.session.journal_rows; }
  entry(seq) { return this.bySeq.get(seq); }
  search(text) {
    const needle = text.toLowerCase();
    return new Set(this.session.journal.filter((e) => JSON.stringify(e).toLowerCase().includes(needle)).map((e) => e.seq));
  }
  image() { return null; } // a session file holds the images' records, not their pixels
}
