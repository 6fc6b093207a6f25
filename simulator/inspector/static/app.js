// The inspector page: a tab per view (the address's fragment says which), the clock with its advance buttons,
// the live stream, and export/open of a session file. Views redraw when the stream says something changed,
// at most once per REFRESH_MS, so a burst of traffic costs one redraw.

import { api, FileSource, LiveSource, setToken, subscribe, tokenFromFragment, Unauthorized } from "./api.js";
import { clear, h } from "./dom.js";
import { JournalView } from "./journal.js";
import { faults, gallery, scenarios, timelines, wallets, webhooks } from "./views.js";

const REFRESH_MS = 300;
const VIEWS = { timelines, gallery, webhooks, wallets, faults, scenarios };

class App {
  constructor() {
    this.api = api;
    this.source = new LiveSource();
    this.journal = new JournalView(this);
    this.view = document.getElementById("view");
    this.stop = null;
    this.lastState = null;
    this.pending = 0;
    this.drawing = false;
  }

  async start() {
    tokenFromFragment();
    window.addEventListener("hashchange", () => this.show());
    for (const button of document.querySelectorAll("#advance button")) {
      button.addEventListener("click", () => this.act(() => api.send("POST", "/clock/advance", { seconds: Number(button.dataset.seconds) })));
    }
    document.getElementById("export").addEventListener("click", (e) => this.exportSession(e));
    document.getElementById("open").addEventListener("change", (e) => this.openSession(e.target.files[0]));
    document.getElementById("back-live").addEventListener("click", () => this.goLive());
    document.getElementById("login").addEventListener("submit", (e) => {
      e.preventDefault();
      setToken(document.getElementById("token").value.trim());
      this.connect();
    });
    await this.connect();
  }

  async connect() {
    try {
      const info = await api.get("/");
      document.getElementById("login").hidden = true;
      this.info = info;
      await this.journal.load(this.source);
      this.drawClock(info.clock);
      this.show();
      this.listen();
    } catch (error) {
      if (error instanceof Unauthorized) this.locked(sessionStorage.length > 0);
      else this.banner(`Cannot reach the control plane: ${error.message}`);
    }
  }

  locked(tried) {
    if (this.stop) this.stop();
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = tried ? "That token was refused." : "";
    document.getElementById("live").textContent = "locked";
    clear(this.view);
  }

  listen() {
    if (this.stop) this.stop();
    this.stop = subscribe((name, data) => this.onEvent(name, data), (status) => this.onStatus(status),
      () => this.journal.lastSeq() ?? 0);
  }

  onStatus(status) {
    const badge = document.getElementById("live");
    badge.textContent = status;
    badge.className = `badge ${status}`;
    if (status === "locked") this.locked(true);
  }

  onEvent(name, data) {
    if (!this.source.live) return;
    if (name === "entries") {
      if (data.skipped) this.journal.load(this.source).then(() => this.journal.schedule());
      else this.journal.add(data.entries);
      this.changed();
    } else if (name === "state") {
      this.drawClock(data.clock);
      const key = `${data.clock.now}|${data.tasks}|${data.last_seq}|${data.webhooks_pending}`;
      // The journal was emptied (a reset): its numbers start again at 1, so what the page holds is stale.
      if (data.last_seq < (this.journal.lastSeq() ?? 0)) this.journal.load(this.source).then(() => this.journal.schedule());
      if (key !== this.lastState) {
        this.lastState = key;
        this.changed();
      }
    }
  }

  // Something changed: redraw the open view soon (not the journal, which draws its own rows).
  changed() {
    if (this.current === "journal" || this.pending) return;
    this.pending = setTimeout(() => { this.pending = 0; this.refresh(); }, REFRESH_MS);
  }

  drawClock(clock) {
    const el = document.getElementById("clock");
    el.textContent = `${clock.iso.replace("T", " ")} · ${clock.mode}${clock.autojump ? " (autojump)" : ""}`;
    el.dataset.now = clock.now;
    document.getElementById("advance").hidden = !(this.source.live && clock.mode === "virtual");
  }

  // Run a control call, then redraw; a refusal is shown, not swallowed.
  async act(call) {
    try {
      const result = await call();
      if (result && result.iso) this.drawClock(result);
      await this.refresh();
    } catch (error) {
      this.banner(error.message || String(error));
    }
  }

  banner(text) {
    const el = document.getElementById("banner");
    el.hidden = !text;
    el.textContent = text || "";
  }

  show() {
    const [name, query] = (location.hash.slice(1) || "journal").split("?");
    this.current = name in VIEWS ? name : "journal";
    this.params = new URLSearchParams(query || "");
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === this.current);
    if (this.current === "journal") this.journal.render(this.view);
    else this.refresh();
  }

  async refresh() {
    if (this.current === "journal") {
      this.journal.schedule();
      return;
    }
    if (this.drawing) { this.changed(); return; }
    this.drawing = true;
    try {
      const target = h("div", { class: `view-${this.current}` });
      await VIEWS[this.current](target, this, this.params);
      clear(this.view, target);
      this.banner("");
    } catch (error) {
      if (error instanceof Unauthorized) this.locked(true);
      else this.banner(`${this.current}: ${error.message || error}`);
    } finally {
      this.drawing = false;
    }
  }

  async exportSession(event) {
    event.preventDefault();
    if (!this.source.live) return;
    const blob = await api.download("/session");
    const link = h("a", { href: URL.createObjectURL(blob), download: "nanobanana-sim-session.json" });
    document.body.append(link);
    link.click();
    link.remove();
  }

  async openSession(file) {
    if (!file) return;
    try {
      this.source = new FileSource(JSON.parse(await file.text()), file.name);
    } catch (error) {
      this.banner(`${file.name}: ${error.message}`);
      return;
    }
    if (this.stop) this.stop();
    this.stop = null;
    document.body.classList.add("reading-file");
    document.getElementById("back-live").hidden = false;
    document.getElementById("live").textContent = `reading ${file.name}`;
    this.drawClock(this.source.info().clock);
    await this.journal.load(this.source);
    this.show();
  }

  async goLive() {
    this.source = new LiveSource();
    document.body.classList.remove("reading-file");
    document.getElementById("back-live").hidden = true;
    document.getElementById("open").value = "";
    await this.connect();
  }
}

new App().start();
