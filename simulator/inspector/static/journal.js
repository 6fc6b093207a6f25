// The live journal: rows arrive from the stream in batches, are kept up to KEEP, and at most SHOW of those that
// pass the filters are drawn, once per animation frame at most, so hundreds of requests a second stay smooth.
// Pause stops drawing (rows still arrive and are counted); resume draws what came meanwhile.

import { clear, clockTime, copy, duration, empty, h, pretty, statusClass, table, taskLink } from "./dom.js";

const KEEP = 5000;
const SHOW = 500;

export class JournalView {
  constructor(app) {
    this.app = app;
    this.rows = [];
    this.paused = false;
    this.unseen = 0;
    this.selected = null;
    this.searchHits = null;
    this.frame = 0;
    this.filters = { kind: "", provider: "", operation: "", status: "", owner: "", task: "", faulted: false,
                     rejected: false, search: "" };
  }

  lastSeq() {
    return this.rows.length ? this.rows[this.rows.length - 1].seq : null;
  }

  async load(source) {
    this.rows = (await source.rows()) || [];
    this.searchHits = null;
    if (this.filters.search) this.searchHits = await source.search(this.filters.search);
    this.whole = true;
  }

  add(entries) {
    for (const row of entries) {
      if (this.rows.length && row.seq <= this.rows[this.rows.length - 1].seq) continue; // a replay after reconnect
      this.rows.push(row);
    }
    if (this.rows.length > KEEP) this.rows.splice(0, this.rows.length - KEEP);
    if (this.paused) {
      this.unseen += entries.length;
      this.drawPauseState();
      return;
    }
    this.schedule();
  }

  // New rows are drawn incrementally (prepended, the oldest trimmed); a change of filter, pause or source
  // redraws the list whole.
  schedule(whole = false) {
    if (whole) this.whole = true;
    if (!this.frame && this.root) this.frame = requestAnimationFrame(() => { this.frame = 0; this.drawRows(); });
  }

  matches(row) {
    const f = this.filters;
    if (f.kind && row.kind !== f.kind) return false;
    if (f.provider && row.provider !== f.provider) return false;
    if (f.operation && !(row.operation || "").toLowerCase().includes(f.operation.toLowerCase())) return false;
    if (f.status) {
      const text = String(row.status ?? "none");
      const wanted = f.status.toLowerCase().replace(/x/g, "");
      if (!text.startsWith(wanted)) return false;
    }
    if (f.owner && !(row.owner || "").includes(f.owner)) return false;
    if (f.task && !(row.task_id || "").includes(f.task)) return false;
    if (f.faulted && !row.faults.length) return false;
    if (f.rejected && !isRejected(row)) return false;
    if (this.searchHits && !this.searchHits.has(row.seq)) return false;
    return true;
  }

  render(root) {
    this.root = root;
    const providers = [...new Set(this.rows.map((r) => r.provider).filter(Boolean))].sort();
    const f = this.filters;
    const input = (name, placeholder, size = 12) => h("input", {
      name, placeholder, size, value: f[name], "aria-label": placeholder,
      oninput: (e) => { f[name] = e.target.value; this.schedule(true); },
    });
    const check = (name, label) => h("label", {}, h("input", {
      type: "checkbox", name, checked: f[name], onchange: (e) => { f[name] = e.target.checked; this.schedule(true); },
    }), label);
    this.pauseButton = h("button", { id: "pause", onclick: () => this.togglePause() }, "Pause");
    this.counter = h("span", { class: "muted", id: "journal-count" });
    this.list = h("div", { class: "rows", id: "journal-rows" });
    this.detail = h("section", { class: "detail", id: "entry-detail" }, empty("Select an entry to see its request, answer and verdict."));
    const search = h("input", { name: "search", type: "search", placeholder: "search bodies and headers", size: 24,
      value: f.search, "aria-label": "search bodies and headers" });
    const searchForm = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      f.search = search.value.trim();
      this.searchHits = f.search ? await this.app.source.search(f.search) : null;
      this.schedule(true);
    } }, search, h("button", {}, "Search"));
    clear(root,
      h("div", { class: "filters" },
        h("select", { name: "kind", "aria-label": "kind", onchange: (e) => { f.kind = e.target.value; this.schedule(true); } },
          ["", "http", "ws", "webhook", "event"].map((k) => h("option", { value: k, selected: f.kind === k }, k || "every kind"))),
        h("select", { name: "provider", "aria-label": "provider", onchange: (e) => { f.provider = e.target.value; this.schedule(true); } },
          h("option", { value: "" }, "every provider"),
          providers.map((p) => h("option", { value: p, selected: f.provider === p }, p))),
        input("operation", "operation"), input("status", "status (4xx)", 8), input("owner", "API key (masked)"),
        input("task", "task id"), check("faulted", "faulted"), check("rejected", "rejected"), searchForm,
        this.pauseButton, this.counter),
      h("div", { class: "split" }, this.list, this.detail));
    this.whole = true;
    this.drawRows();
    if (this.selected !== null) this.open(this.selected);
  }

  togglePause() {
    this.paused = !this.paused;
    this.frozenAt = this.lastSeq() ?? 0; // while paused, even a filter change draws nothing newer
    if (!this.paused) {
      this.unseen = 0;
      this.schedule(true);
    }
    this.drawPauseState();
  }

  drawPauseState() {
    if (!this.pauseButton) return;
    this.pauseButton.textContent = this.paused ? `Resume (${this.unseen} new)` : "Pause";
    this.pauseButton.classList.toggle("on", this.paused);
  }

  drawRows() {
    if (!this.list || !this.list.isConnected) return;
    const whole = this.whole || !this.body || !this.body.isConnected;
    this.whole = false;
    const upTo = this.paused ? this.frozenAt : Infinity;
    const after = whole ? -Infinity : this.drawnSeq;
    const fresh = [];
    for (let i = this.rows.length - 1; i >= 0 && fresh.length < SHOW; i--) {
      const row = this.rows[i];
      if (row.seq <= after) break;
      if (row.seq <= upTo && this.matches(row)) fresh.push(row);
    }
    this.drawnSeq = Math.min(upTo, this.lastSeq() ?? 0);
    if (whole) {
      const drawn = fresh.length ? table(["#", "time", "provider", "request, and why it was refused", "status", "task"],
        fresh.map((row) => this.row(row)), { class: "journal" }) : null;
      this.body = drawn ? drawn.querySelector("tbody") : null;
      clear(this.list, drawn || empty("No entries match."));
    } else if (fresh.length) {
      const rows = document.createDocumentFragment();
      for (const row of fresh) rows.append(this.row(row));
      this.body.prepend(rows);
      while (this.body.childElementCount > SHOW) this.body.lastElementChild.remove();
    }
    const shown = this.body ? this.body.childElementCount : 0;
    this.counter.textContent = `${shown} shown of ${this.rows.length}` + (shown === SHOW ? ` (the newest ${SHOW})` : "");
  }

  row(row) {
    const verdict = [];
    if (row.why) verdict.push(h("span", { class: "flag bad" }, row.why));
    for (const rule of row.faults) verdict.push(h("span", { class: "flag fault" }, `fault: ${rule}`));
    if (row.self_check) verdict.push(h("span", { class: "flag bad" }, "self-check"));
    if (row.note) verdict.push(h("span", { class: "note" }, row.note));
    const request = row.kind === "webhook"
      ? `webhook ${row.detail.event || ""} #${row.detail.attempt || 1} → ${row.path}`
      : `${row.method || ""} ${row.path || ""}${row.operation ? ` (${row.operation})` : ""}`;
    return h("tr", {
      class: `${row.seq === this.selected ? "selected" : ""} ${isRejected(row) ? "rejected" : ""}`,
      "data-seq": row.seq, onclick: () => this.open(row.seq),
    },
    h("td", {}, row.seq), h("td", {}, clockTime(row.at)), h("td", {}, row.provider || "—"),
    h("td", { class: "req", title: request }, request,
      verdict.length ? h("div", { class: "why", title: verdict.map((v) => v.textContent).join(" · ") }, verdict) : null),
    h("td", { class: statusClass(row.status) }, row.status ?? (row.kind === "webhook" ? row.detail.outcome : "—")),
    h("td", { class: "task" }, taskLink(row.task_id)));
  }

  async open(seq) {
    this.selected = seq;
    for (const tr of this.list.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const tr = this.list.querySelector(`tr[data-seq="${seq}"]`);
    if (tr) tr.classList.add("selected");
    let entry;
    try {
      entry = await this.app.source.entry(seq);
    } catch (error) {
      clear(this.detail, h("p", { class: "error" }, String(error.message || error)));
      return;
    }
    if (!entry) {
      clear(this.detail, empty(`Entry ${seq} is no longer in the journal.`));
      return;
    }
    clear(this.detail, entryDetail(entry));
  }
}

function isRejected(row) {
  return row.violations > 0 || (row.kind === "http" && (row.status === null || row.status >= 400));
}

function headersTable(headers) {
  const names = Object.keys(headers || {});
  if (!names.length) return empty("no headers");
  return table(["header", "value"], names.map((n) => h("tr", {}, h("td", {}, n), h("td", {}, headers[n]))), { class: "kv" });
}

function entryDetail(e) {
  const took = e.finished_at !== null && e.finished_at !== undefined ? duration(e.finished_at - e.at) : "—";
  const snippet = h("pre", { class: "snippet", id: "snippet", hidden: true });
  const show = (text, button) => { snippet.hidden = false; snippet.textContent = text; copy(text, button); };
  const action = (label, id, make) => h("button", { id, onclick: (ev) => show(make(e), ev.target) }, label);
  return [
    h("h2", {}, `#${e.seq} `, h("span", { class: statusClass(e.status) }, e.status ?? "no answer"), ` ${e.method || ""} ${e.path || ""}`),
    h("p", { class: "muted" }, [e.kind, e.provider, e.operation].filter(Boolean).join(" · "),
      ` · at ${clockTime(e.at)} · took ${took} · API key ${e.owner || "—"} · task `, taskLink(e.task_id)),
    e.note ? h("p", { class: "note" }, e.note) : null,
    verdicts(e),
    e.kind === "http" ? h("div", { class: "actions" }, action("Copy as cURL", "copy-curl", curl),
      action("Copy as pytest", "copy-pytest", pytestSnippet)) : null,
    snippet,
    h("h3", {}, "Request"), headersTable(e.request_headers),
    Object.keys(e.query || {}).length ? h("pre", {}, pretty(e.query)) : null,
    h("pre", { class: "body", id: "request-body" }, pretty(e.request_body)),
    h("h3", {}, "Response"), headersTable(e.response_headers),
    h("pre", { class: "body", id: "response-body" }, pretty(e.response_body)),
    e.detail && Object.keys(e.detail).length ? [h("h3", {}, "Detail"), h("pre", {}, pretty(e.detail))] : null,
    e.truncated && e.truncated.length ? [h("h3", {}, "Cut to keep the journal bounded"), h("ul", {}, e.truncated.map((t) => h("li", {}, t)))] : null,
  ];
}

function verdicts(e) {
  const parts = [];
  if (e.violations && e.violations.length) {
    parts.push(h("h3", {}, "Schema violations"), table(["field", "rule", "message", "value", "nearest valid value"],
      e.violations.map((v) => h("tr", {}, h("td", { class: "field" }, v.path || "(body)"), h("td", {}, v.rule),
        h("td", {}, v.message), h("td", {}, pretty(v.value)), h("td", { class: "nearest" }, v.nearest === null || v.nearest === undefined ? "—" : pretty(v.nearest)))),
      { class: "violations", id: "violations" }));
  }
  if (e.faults && e.faults.length) {
    parts.push(h("h3", {}, "Fault rules that fired"), h("ul", { id: "faults-fired" }, e.faults.map((f) =>
      h("li", {}, h("strong", {}, f.rule || f.limit || "limit"), " → ", pretty(f.do || f.reason || f)))));
  }
  if (e.self_check && e.self_check.length) {
    parts.push(h("h3", {}, "Self-check: the simulator's own answer broke its contract"),
      h("ul", { id: "self-check" }, e.self_check.map((f) => h("li", {}, f.problem ||
        `not a valid ${f.schema}: ${(f.violations || []).map((v) => `${v.path || "(root)"}: ${v.message}`).join("; ")}`))));
  }
  if (e.ignored && e.ignored.length) {
    parts.push(h("h3", {}, "Undocumented fields the provider ignored"),
      h("ul", {}, e.ignored.map((i) => h("li", {}, i.path || pretty(i)))));
  }
  return parts.length ? h("div", { class: "verdicts" }, parts) : null;
}

const SKIPPED = new Set(["host", "content-length", "connection", "accept-encoding", "user-agent", "accept"]);

function masked(value) {
  return /[…•]/.test(value);
}

function shellQuote(text) {
  return `'${String(text).replace(/'/g, "'\\''")}'`;
}

function url(e) {
  const host = (e.request_headers || {}).host || location.host;
  const query = new URLSearchParams();
  for (const [name, values] of Object.entries(e.query || {})) for (const v of values) query.append(name, v);
  const text = query.toString();
  return `http://${host}${e.path}${text ? `?${text}` : ""}`;
}

function body(e) {
  return e.request_body === null || e.request_body === undefined ? null
    : typeof e.request_body === "string" ? e.request_body : JSON.stringify(e.request_body);
}

// The key stays masked: the command reads it from $API_KEY instead.
function curl(e) {
  const lines = [`curl -X ${e.method} ${shellQuote(url(e))}`];
  for (const [name, value] of Object.entries(e.request_headers || {})) {
    if (SKIPPED.has(name.toLowerCase())) continue;
    const shown = masked(value) ? value.replace(/^(\S+ )?.*$/, (_, scheme) => `${scheme || ""}$API_KEY`) : value;
    lines.push(masked(value) ? `-H "${name}: ${shown}"` : `-H ${shellQuote(`${name}: ${value}`)}`);
  }
  const data = body(e);
  if (data !== null) lines.push(`--data-raw ${shellQuote(data)}`);
  return lines.join(" \\\n  ");
}

function pyLiteral(value) {
  return JSON.stringify(value, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
}

function pytestSnippet(e) {
  const slug = e.provider || "civitai";
  const path = (e.path || "/").startsWith(`/${slug}/`) ? e.path.slice(slug.length + 1) : e.path;
  const extra = Object.entries(e.request_headers || {}).filter(([n, v]) => !SKIPPED.has(n.toLowerCase()) && !masked(v) && n.toLowerCase() !== "content-type");
  const args = [JSON.stringify(path || "/")];
  if (e.request_body !== null && e.request_body !== undefined) {
    args.push(typeof e.request_body === "string" ? `content=${JSON.stringify(e.request_body)}` : `json=${pyLiteral(e.request_body)}`);
  }
  const query = Object.entries(e.query || {});
  if (query.length) args.push(`params=${pyLiteral(Object.fromEntries(query.map(([n, v]) => [n, v.length === 1 ? v[0] : v])))}`);
  if (extra.length) args.push(`headers=${pyLiteral(Object.fromEntries(extra))}`);
  return [
    "import httpx",
    "",
    "",
    `def test_journal_entry_${e.seq}(nanobanana):`,
    `    client = httpx.Client(base_url=nanobanana.base_url(${JSON.stringify(slug)}), headers=nanobanana.auth_headers(${JSON.stringify(slug)}))`,
    `    response = client.${(e.method || "get").toLowerCase()}(${args.join(", ")})`,
    `    assert response.status_code == ${e.status}`,
    "",
  ].join("\n");
}
