// The fanout dashboard: the tenant's jobs, and one job's live progress, failed items and
// actions. Plain JavaScript against the HTTP API; no third-party code, nothing from a CDN.
"use strict";

const KEY = "fanout.apiKey";
const ROOT = new URL("..", document.baseURI); // the API, wherever the dashboard is mounted
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem(KEY), follow: null, timer: null, job: null };

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
  }
}

function headers(extra = {}) {
  const all = { accept: "application/json", ...extra };
  if (state.key) all.authorization = `Bearer ${state.key}`;
  return all;
}

async function api(path, options = {}) {
  const response = await fetch(new URL(path, ROOT), { ...options, headers: headers() });
  if (response.status === 401) {
    login(state.key ? "That API key was refused." : "");
    throw new ApiError(401, null);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function show(section) {
  for (const id of ["login", "jobs", "job"]) $(id).hidden = id !== section;
  $("sign-out").hidden = !state.key;
}

function stop() {
  if (state.follow) state.follow.abort();
  clearInterval(state.timer);
  state.follow = state.timer = null;
}

// -- sign in ---------------------------------------------------------------------------------

function login(message) {
  stop();
  show("login");
  $("login-error").textContent = message;
  $("api-key").focus();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  localStorage.setItem(KEY, state.key);
  $("api-key").value = "";
  route();
});

$("sign-out").addEventListener("click", () => {
  localStorage.removeItem(KEY);
  state.key = null;
  login("");
});

// -- progress bars ---------------------------------------------------------------------------

function done(counts) {
  return counts.succeeded + counts.failed;
}

function percent(counts) {
  return counts.total ? Math.floor((100 * done(counts)) / counts.total) : 100;
}

function progressBar(counts, bar = element("div", null, "progress")) {
  bar.replaceChildren();
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuenow", String(percent(counts)));
  for (const part of ["succeeded", "failed", "running"]) {
    const span = element("span", null, part);
    span.style.width = `${counts.total ? (100 * counts[part]) / counts.total : 0}%`;
    bar.append(span);
  }
  return bar;
}

function statusBadge(status, node = element("span")) {
  node.textContent = status;
  node.className = `status ${status}`;
  return node;
}

// -- the jobs --------------------------------------------------------------------------------

async function listJobs(cursor) {
  const query = new URLSearchParams({ limit: "25" });
  if ($("status-filter").value) query.set("status", $("status-filter").value);
  if (cursor) query.set("cursor", cursor);
  const page = await api(`jobs?${query}`);
  const rows = page.items.map((job) => {
    const row = element("tr");
    row.dataset.job = job.id;
    const link = element("a");
    link.href = `#/jobs/${encodeURIComponent(job.id)}`;
    link.append(element("code", job.id));
    const progress = element("td", null, "cell-progress");
    progress.append(progressBar(job.counts), element("span", `${percent(job.counts)} %`, "quiet"));
    const cells = [link, job.task, statusBadge(job.status), progress, job.counts.failed, when(job.created_at)];
    row.append(...cells.map((cell) => (cell instanceof HTMLTableCellElement ? cell : td(cell))));
    return row;
  });
  if (cursor) $("job-rows").append(...rows);
  else $("job-rows").replaceChildren(...rows);
  $("no-jobs").hidden = $("job-rows").children.length > 0;
  $("more").hidden = !page.next_cursor;
  $("more").onclick = () => listJobs(page.next_cursor).catch(report);
  return page;
}

function when(timestamp) {
  return timestamp ? `${timestamp.slice(0, 19).replace("T", " ")} UTC` : null;
}

function td(content) {
  const cell = element("td");
  if (content instanceof Node) cell.append(content);
  else cell.textContent = content === null || content === undefined ? "" : String(content);
  return cell;
}

async function showJobs() {
  show("jobs");
  const page = await listJobs();
  // The first page refreshes while it is all that is shown; "More" stops that.
  state.timer = setInterval(() => {
    if ($("job-rows").children.length <= page.items.length) listJobs().catch(report);
  }, 2000);
}

$("status-filter").addEventListener("change", () => listJobs().catch(report));

// -- one job ---------------------------------------------------------------------------------

function definitions(list, entries) {
  list.replaceChildren(
    ...entries.map(([name, value]) => {
      const item = element("div");
      item.dataset.name = name;
      item.append(element("dt", name), element("dd", value === null || value === undefined ? "–" : value));
      return item;
    }),
  );
}

function renderJob(job) {
  const previous = state.job;
  state.job = job;
  $("job-task").textContent = job.task;
  $("job-id").textContent = job.id;
  statusBadge(job.status, $("job-status"));
  progressBar(job.counts, $("job-progress"));
  $("percent").textContent = `${percent(job.counts)} %`;
  const c = job.counts;
  definitions($("counts"), [
    ["total", c.total], ["succeeded", c.succeeded], ["failed", c.failed],
    ["running", c.running], ["pending", c.pending], ["cancelled", c.cancelled],
  ]);
  const details = [
    ["created", when(job.created_at)], ["started", when(job.started_at)], ["finished", when(job.finished_at)],
    ["chunk size", job.chunk_size], ["max concurrency", job.max_concurrency],
  ];
  if (job.redrive_count !== undefined) details.push(["redrives", job.redrive_count]);
  if (job.error) details.push(["error", job.error]);
  if (job.webhook) details.push(["webhook", `${job.webhook.status || "not yet sent"} (${job.webhook.attempts.length} attempts)`]);
  definitions($("details"), details);
  renderUsage(job.usage);
  const ended = TERMINAL.has(job.status);
  $("cancel").hidden = ended;
  $("redrive").hidden = !ended || c.failed + c.cancelled === 0;
  if (!previous || previous.id !== job.id || previous.counts.failed !== c.failed || previous.status !== job.status) {
    loadFailures(job.id).catch(report);
  }
}

function renderUsage(usage) {
  $("usage-title").hidden = !usage;
  if (!usage) return $("usage").replaceChildren();
  const entries = [
    ["chunks", usage.chunks],
    ["attempts", usage.attempts],
    ["worker seconds", `${usage.worker_seconds.toFixed(3)} s`],
  ];
  for (const [kind, count] of Object.entries(usage.requests || {})) {
    entries.push([kind, Number.isInteger(count) ? count : count.toFixed(1)]);
  }
  if (usage.cost_usd !== null && usage.cost_usd !== undefined) {
    entries.push(["cost (list prices)", `$${usage.cost_usd.toPrecision(3)}`]);
  }
  definitions($("usage"), entries);
}

async function loadFailures(jobId, cursor) {
  const query = new URLSearchParams({ status: "failed", limit: "100" });
  if (cursor) query.set("cursor", cursor);
  const page = await api(`jobs/${encodeURIComponent(jobId)}/results?${query}`);
  const rows = page.items.map((item) => {
    const row = element("tr");
    const error = item.error || {};
    row.append(td(item.index), td(error.type), td(error.message), td(error.attempts));
    return row;
  });
  if (cursor) $("failed-rows").append(...rows);
  else $("failed-rows").replaceChildren(...rows);
  $("no-failures").hidden = $("failed-rows").children.length > 0;
  $("more-failures").hidden = !page.next_cursor;
  $("more-failures").onclick = () => loadFailures(jobId, page.next_cursor).catch(report);
}

// Server-Sent Events read with fetch (EventSource cannot send an Authorization header),
// reopened with Last-Event-ID when the server closes a long stream or the network drops.
async function followJob(jobId, signal) {
  let last = null;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const extra = { accept: "text/event-stream" };
      if (last) extra["last-event-id"] = last;
      const response = await fetch(new URL(`jobs/${encodeURIComponent(jobId)}/events`, ROOT), {
        headers: headers(extra),
        signal,
      });
      if (response.status === 204) return; // it had ended
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      $("live").textContent = "live";
      for await (const event of events(response.body)) {
        if (event.id) last = event.id;
        if (event.event !== "progress" && event.event !== "end") continue;
        failures = 0;
        renderJob(JSON.parse(event.data));
        if (event.event === "end") return;
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error.status && error.status < 500) throw error;
      failures += 1;
    } finally {
      $("live").textContent = "";
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** failures)));
  }
}

async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done: finished } = await reader.read();
    if (finished) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = { event: "message", data: [], id: null };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(text);
        else if (field === "event") event.event = text;
        else if (field === "id") event.id = text;
      }
      if (event.data.length) yield { ...event, data: event.data.join("\n") };
    }
  }
}

function watch(jobId) {
  if (state.follow) state.follow.abort();
  const control = new AbortController();
  state.follow = control;
  followJob(jobId, control.signal).catch(report);
}

async function showJob(jobId) {
  show("job");
  state.job = null;
  $("failed-rows").replaceChildren();
  renderJob(await api(`jobs/${encodeURIComponent(jobId)}`));
  watch(jobId);
}

async function act(action) {
  const job = state.job;
  $("message").textContent = "";
  try {
    renderJob(await api(`jobs/${encodeURIComponent(job.id)}/${action}`, { method: "POST" }));
    watch(job.id);
  } catch (error) {
    report(error);
  }
}

$("cancel").addEventListener("click", () => act("cancel"));
$("redrive").addEventListener("click", () => act("redrive"));

// -- routing ---------------------------------------------------------------------------------

function report(error) {
  if (error.status !== 401) $("message").textContent = error.message;
}

function route() {
  stop();
  $("message").textContent = "";
  const match = location.hash.match(/^#\/jobs\/([^/]+)$/);
  (match ? showJob(decodeURIComponent(match[1])) : showJobs()).catch(report);
}

window.addEventListener("hashchange", route);
route();
