// The views other than the journal: each one reads its JSON from the source and draws it; none keeps state
// the control plane does not have.

import { clear, clockTime, duration, empty, h, pretty, statusClass, table, taskLink } from "./dom.js";

const FLAG_WORDS = { too_fast: "too fast", after_terminal: "after terminal", before_retry_after: "before Retry-After" };

// -- task timelines -----------------------------------------------------------------------------------------

export async function timelines(root, app, params) {
  const data = await app.source.timelines();
  const now = data.clock.now;
  const focus = params.get("task");
  const tasks = focus ? data.tasks.filter((t) => t.id === focus) : data.tasks;
  if (!tasks.length) {
    clear(root, empty(focus ? `No task ${focus}.` : "No tasks yet: submit a generation and it shows here."));
    return;
  }
  let start = Infinity;
  let end = now;
  for (const t of tasks) {
    start = Math.min(start, t.accepted_at);
    end = Math.max(end, t.terminal_at ?? now, ...t.polls.map((p) => p.at), ...t.webhooks.map((w) => w.at));
  }
  const span = Math.max(end - start, 1);
  const x = (at) => `${(((at - start) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(((b - a) / span) * 100, 0.3).toFixed(3)}%`;
  clear(root,
    focus ? h("p", {}, h("a", { href: "#timelines" }, "← every task")) : null,
    h("p", { class: "legend" },
      h("span", { class: "key seg queued" }, "queued"), h("span", { class: "key seg processing" }, "processing"),
      h("span", { class: "key seg succeeded" }, "succeeded"), h("span", { class: "key seg failed" }, "failed / canceled / expired"),
      h("span", { class: "key tick" }, "poll"), h("span", { class: "key tick bad" }, "poll flagged"),
      h("span", { class: "key hook ok" }, "◆ webhook 2xx"), h("span", { class: "key hook bad" }, "◆ webhook failed"),
      ` · ${clockTime(start)} → ${clockTime(end)} (${duration(span)})`),
    h("div", { class: "timelines", id: "timelines" }, tasks.map((t) => {
      const terminal = t.terminal_at !== null && t.terminal_at <= now;
      const segments = [];
      const startedAt = t.started_at ?? null;
      const queueEnd = Math.min(startedAt ?? now, now, t.terminal_at ?? Infinity);
      segments.push(h("div", { class: "seg queued", style: `left:${x(t.accepted_at)};width:${width(t.accepted_at, queueEnd)}` }));
      if (startedAt !== null && startedAt <= now) {
        const runEnd = Math.min(t.terminal_at ?? now, now);
        segments.push(h("div", { class: "seg processing", style: `left:${x(startedAt)};width:${width(startedAt, runEnd)}` }));
      }
      if (terminal) {
        const kind = t.phase === "succeeded" ? "succeeded" : "failed";
        segments.push(h("div", { class: `seg ${kind} end`, style: `left:${x(t.terminal_at)}`, title: `${t.phase} at ${clockTime(t.terminal_at)}` }));
      }
      const ticks = t.polls.map((p) => h("div", {
        class: `tick ${p.flags.length ? "bad" : ""}`, style: `left:${x(p.at)}`,
        title: `poll #${p.seq} at ${clockTime(p.at)} → ${p.status}; ${p.gap === null ? "first" : `${duration(p.gap)} after the previous answer`}` +
          (p.flags.length ? ` — ${p.flags.map((f) => FLAG_WORDS[f] || f).join(", ")}` : ""),
      }));
      const hooks = t.webhooks.map((w) => h("div", {
        class: `hook ${w.status >= 200 && w.status < 300 ? "ok" : "bad"}`, style: `left:${x(w.at)}`,
        title: `webhook ${w.event} attempt ${w.attempt} at ${clockTime(w.at)} → ${w.status ?? w.outcome}`,
      }));
      const flagged = t.polls.filter((p) => p.flags.length);
      return h("div", { class: "task-row", "data-task": t.id, "data-phase": t.phase },
        h("div", { class: "label" }, taskLink(t.id), h("span", { class: `phase ${t.phase}` }, t.phase),
          h("span", { class: "muted" }, ` ${t.provider} · ${t.model}`)),
        h("div", { class: "track" }, segments, ticks, hooks, h("div", { class: "now", style: `left:${x(now)}` })),
        h("div", { class: "facts" },
          `${t.polls.length} poll${t.polls.length === 1 ? "" : "s"}`,
          t.min_poll ? ` (docs ask ≥ ${t.min_poll} s apart)` : "",
          flagged.length ? h("span", { class: "flag bad" }, ` ${flagged.length} flagged: ${[...new Set(flagged.flatMap((p) => p.flags))].map((f) => FLAG_WORDS[f] || f).join(", ")}`) : "",
          ` · ${t.webhooks.length} webhook attempt${t.webhooks.length === 1 ? "" : "s"}`,
          t.failure ? h("span", { class: "note" }, ` · ${t.failure.kind}: ${t.failure.message}`) : "",
          t.faults.length ? h("span", { class: "flag fault" }, ` · ${t.faults.join("; ")}`) : ""),
        focus ? pollTable(t) : null);
    })));
}

function pollTable(t) {
  return [
    h("h3", {}, "Polls"),
    t.polls.length ? table(["#", "at", "status", "gap after the previous answer", "flags"], t.polls.map((p) =>
      h("tr", {}, h("td", {}, p.seq), h("td", {}, clockTime(p.at)), h("td", { class: statusClass(p.status) }, p.status),
        h("td", {}, p.gap === null ? "—" : duration(p.gap)), h("td", {}, p.flags.map((f) => FLAG_WORDS[f] || f).join(", "))))) : empty("none"),
    h("h3", {}, "Webhook attempts"),
    t.webhooks.length ? table(["#", "at", "event", "attempt", "status", "outcome"], t.webhooks.map((w) =>
      h("tr", {}, h("td", {}, w.seq), h("td", {}, clockTime(w.at)), h("td", {}, w.event), h("td", {}, w.attempt),
        h("td", { class: statusClass(w.status) }, w.status ?? "—"), h("td", {}, w.outcome)))) : empty("none"),
  ];
}

// -- gallery ----------------------------------------------------------------------------------------------------

export async function gallery(root, app) {
  const data = await app.source.gallery();
  if (!data.images.length) {
    clear(root, empty("No images yet."));
    return;
  }
  const now = data.clock.now;
  clear(root, h("div", { class: "gallery", id: "gallery" }, data.images.map((img) => {
    const frame = h("div", { class: "frame" });
    if (img.blocked) frame.append(h("div", { class: "blocked" }, "BLOCKED", h("small", {}, img.blocked_reason || "")));
    else if (!img.ready) frame.append(h("div", { class: "pending" }, img.phase));
    else {
      const picture = h("img", { alt: `${img.width}×${img.height} ${img.format}`, "data-blob": img.blob_id });
      Promise.resolve(app.source.image(img)).then((src) => {
        if (src) picture.src = src;
        else frame.replaceChildren(h("div", { class: "pending" }, "pixels not kept in a session file"));
      }).catch(() => frame.replaceChildren(h("div", { class: "pending" }, "image unavailable")));
      frame.append(picture);
    }
    const left = img.expires_at === null ? null : img.expires_at - now;
    return h("figure", { class: `card ${img.blocked ? "is-blocked" : ""}`, "data-blob": img.blob_id },
      frame,
      h("figcaption", {},
        h("div", {}, h("strong", {}, `${img.provider} · ${img.model}`), img.partial ? h("span", { class: "flag bad" }, " partial") : ""),
        h("div", { class: "prompt" }, img.prompt),
        h("div", { class: "size" }, `${img.width}×${img.height} ${img.format}`, h("span", { class: "muted" }, ` · seed ${img.seed} · #${img.index}`)),
        Object.keys(img.requested).length ? h("div", { class: "muted" }, "asked: ", Object.entries(img.requested).map(([k, v]) => `${k}=${v}`).join(", ")) : null,
        h("div", {}, "task ", taskLink(img.task_id)),
        h("div", { class: `expiry ${left !== null && left <= 0 ? "expired" : ""}` },
          left === null ? "no signed link handed out yet" : left > 0 ? `link expires in ${duration(left)}` : `link expired ${duration(-left)} ago`)));
  })));
}

// -- webhooks ---------------------------------------------------------------------------------------------------

export async function webhooks(root, app) {
  const data = await app.source.webhooks();
  if (!data.deliveries.length) {
    clear(root, empty("No webhook deliveries yet."));
    return;
  }
  clear(root, h("p", { class: "muted" }, `${data.deliveries.length} deliveries · ${data.pending} pending`),
    h("div", { id: "webhooks" }, data.deliveries.map((d) => h("section", { class: "delivery", "data-outcome": d.outcome },
      h("h3", {}, `${d.event} → `, h("code", {}, d.url), " ", h("span", { class: `phase ${d.outcome}` }, d.outcome),
        d.duplicate ? h("span", { class: "flag fault" }, " duplicate") : "", d.reordered ? h("span", { class: "flag fault" }, " reordered") : ""),
      h("p", { class: "muted" }, d.provider, " · task ", taskLink(d.task_id)),
      d.faults.length ? h("p", {}, d.faults.map((f) => h("span", { class: "flag fault" }, `fault ${f.rule}: ${pretty(f.do)} `))) : null,
      table(["attempt", "at", "receiver said", "took", "backoff", "outcome", "note"], d.attempts.map((a) =>
        h("tr", {}, h("td", {}, a.attempt), h("td", {}, clockTime(a.at)), h("td", { class: statusClass(a.status) }, a.status ?? "—"),
          h("td", {}, a.finished_at === null ? "—" : duration(a.finished_at - a.at)),
          h("td", {}, a.backoff === null ? "—" : duration(a.backoff)), h("td", {}, a.outcome), h("td", {}, a.note || ""))),
      { class: "attempts" })))));
}

// -- wallets ----------------------------------------------------------------------------------------------------

export async function wallets(root, app) {
  const data = await app.source.credits();
  clear(root,
    h("h2", {}, "Balances"),
    data.wallets.length ? table(["provider", "API key", "balance"], data.wallets.map((w) =>
      h("tr", {}, h("td", {}, w.provider), h("td", {}, w.owner), h("td", { class: "num" }, fmt(w.balance)))), { id: "wallets" })
      : empty("No wallet used yet (each starts with the provider's default balance)."),
    h("h2", {}, "Ledger"),
    data.ledger.length ? table(["#", "at", "provider", "API key", "movement", "amount", "balance after", "task"],
      data.ledger.slice().reverse().map((m) => h("tr", { class: m.kind },
        h("td", {}, m.seq), h("td", {}, clockTime(m.at)), h("td", {}, m.provider), h("td", {}, m.owner), h("td", {}, m.kind),
        h("td", { class: "num" }, m.kind === "debit" ? `−${fmt(m.amount)}` : m.kind === "credit" ? `+${fmt(m.amount)}` : `= ${fmt(m.amount)}`),
        h("td", { class: "num" }, fmt(m.balance)), h("td", {}, taskLink(m.task_id)))), { id: "ledger" })
      : empty("No debits or refunds yet."));
}

function fmt(n) {
  return Number.isInteger(n) ? n.toLocaleString("en") : n.toLocaleString("en", { maximumFractionDigits: 5 });
}

// -- faults, limits, scenarios ----------------------------------------------------------------------------------

export async function faults(root, app) {
  const [data, info, windows] = await Promise.all([app.source.faults(), app.source.info(), app.source.windows()]);
  const live = app.source.live;
  clear(root,
    h("h2", {}, "Fault rules"),
    data.rules.length ? table(["name", "match", "when", "do", "matched", "fired", "origin"], data.rules.map((r) =>
      h("tr", {}, h("td", {}, r.name), h("td", {}, h("code", {}, pretty(r.match))), h("td", {}, h("code", {}, pretty(r.when))),
        h("td", {}, h("code", {}, pretty(r.do))), h("td", { class: "num" }, r.matched), h("td", { class: "num" }, r.fired),
        h("td", {}, typeof r.origin === "number" ? `added ${clockTime(r.origin)}` : r.origin))), { id: "rules" }) : empty("No fault rules in force."),
    live ? (app.ruleForm ||= ruleForm(app, Object.keys(info.providers || {}))) : null, // kept across redraws
    h("h2", {}, "Rate limits"),
    data.limits.length ? table(["name", "provider", "API key", "operations", "requests", "per (s)", "concurrent"], data.limits.map((l) =>
      h("tr", {}, h("td", {}, l.name), h("td", {}, l.provider || "any"), h("td", {}, l.api_key ? "one key" : "any"),
        h("td", {}, (l.operations || []).join(", ") || "any"), h("td", { class: "num" }, l.requests ?? "—"),
        h("td", { class: "num" }, l.per ?? "—"), h("td", { class: "num" }, l.concurrent ?? "—"))), { id: "limits" })
      : empty("No rate limits in force."),
    windows.windows.length ? [h("h3", {}, "Request windows now"), table(["limit", "API key", "used", "frees one at"],
      windows.windows.map((w) => h("tr", {}, h("td", {}, w.limit), h("td", {}, w.api_key ?? "any"),
        h("td", { class: `num ${w.used >= w.requests ? "s-4xx" : ""}` }, `${w.used} of ${w.requests} per ${w.per} s`),
        h("td", {}, clockTime(w.frees_at)))), { id: "windows" })] : null,
    live ? h("p", {}, h("button", { id: "clear-faults", onclick: async () => {
      await app.act(() => app.api.send("DELETE", "/faults"));
    } }, "Clear every rule and limit")) : null);
}

// The form builds a rule and posts it; the control plane checks it exactly as it checks a script's, and its
// refusal (the field, the reason) is shown beside the form. Nothing is added unless the whole rule is valid.
function ruleForm(app, providers) {
  const error = h("p", { class: "error", id: "rule-error" });
  const field = (name, label, attrs = {}) => h("label", {}, label, h("input", { name, ...attrs }));
  const form = h("form", { id: "rule-form", class: "rule-form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form).entries());
    const rule = { match: {}, when: {} };
    if (v.name) rule.name = v.name;
    for (const key of ["provider", "operation", "method", "path", "api_key", "model"]) if (v[key]) rule.match[key] = v[key];
    for (const key of ["after", "times", "every", "probability"]) if (v[key] !== "") rule.when[key] = Number(v[key]);
    try {
      rule.do = JSON.parse(v.do || "{}");
    } catch (err) {
      error.textContent = `do: not JSON: ${err.message}`;
      return;
    }
    try {
      await app.api.send("POST", "/faults", { rules: [rule] });
      error.textContent = "";
      form.reset();
      app.refresh();
    } catch (err) {
      error.textContent = err.field ? `${err.message}` : String(err.message || err);
      for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
      const name = (err.field || "").split(".").pop();
      const bad = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
      if (bad) bad.setAttribute("aria-invalid", "true");
    }
  } },
  h("h3", {}, "Add a rule"),
  h("div", { class: "grid" },
    field("name", "name", { placeholder: "first-submit-429" }),
    h("label", {}, "provider", h("select", { name: "provider" }, h("option", { value: "" }, "any"), providers.map((p) => h("option", { value: p }, p)))),
    field("operation", "operation", { placeholder: "SubmitWorkflow" }),
    field("method", "method", { placeholder: "POST" }),
    field("path", "path (glob)", { placeholder: "*/workflows" }),
    field("api_key", "API key"),
    field("model", "model"),
    field("after", "after N matches", { type: "number" }),
    field("times", "at most N times", { type: "number" }),
    field("every", "every Nth", { type: "number" }),
    field("probability", "probability (0 to 1)", { type: "number", step: "any" })),
  h("label", { class: "wide" }, "do (JSON)", h("textarea", { name: "do", rows: 2 }, '{"error": "rate_limited", "retry_after": 2}')),
  h("button", {}, "Add rule"), error);
  return form;
}

export async function scenarios(root, app) {
  const data = await app.source.scenarios();
  const live = app.source.live;
  clear(root,
    h("h2", {}, "Loaded"),
    data.loaded.length ? h("ul", { id: "loaded" }, data.loaded.map((name) => h("li", {}, name || "(unnamed)"))) : empty("No scenario loaded."),
    live && data.loaded.length ? h("button", { id: "clear-scenarios", onclick: () => app.act(() => app.api.send("DELETE", "/scenarios")) }, "Clear scenarios") : null,
    h("h2", {}, "Shipped"),
    data.shipped.length ? table(["scenario", ""], data.shipped.map((s) => {
      const name = typeof s === "string" ? s : s.name;
      const about = typeof s === "string" ? "" : s.description || s.summary || "";
      return h("tr", {}, h("td", {}, h("strong", {}, name), about ? h("div", { class: "muted" }, about) : null),
        h("td", {}, live ? h("button", { "data-scenario": name, onclick: () => app.act(() => app.api.send("POST", "/scenarios", { name })) }, "Load") : ""));
    }), { id: "shipped" }) : empty("Nothing shipped (or a session file)."));
}
