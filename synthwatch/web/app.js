// The analyst's page: score an image with /detect, show the nearest known fakes, and read the
// head registry from /models. Every data request sends the token in the Authorization header;
// the token is kept in sessionStorage (gone when the tab closes) and never put in a URL.
"use strict";

const TOKEN_KEY = "synthwatch.token";
const THUMBNAIL_SIZE = 160;
const objectUrls = [];

function $(id) {
  return document.getElementById(id);
}

// An element with text content only: nothing the service returns is parsed as HTML.
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell);
    else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fixed(value, digits = 4) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

// -- the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(status === 401 ? `401: ${detail} Enter the service's token above.` : `${status}: ${detail}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let response;
  try {
    response = await fetch(path, { ...options, headers, cache: "no-store" });
  } catch (error) {
    throw new Error("Expected an answer from the service, but the request failed (service down, or an upload " +
                    "refused part-way for its size). Check the service, or send a smaller image.");
  }
  if (!response.ok) throw new ApiError(response.status, await problem(response));
  return response;
}

async function problem(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (error) {
    return response.statusText || "no reason given";
  }
}

function showError(error) {
  $("error").textContent = error.message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function setStatus(text) {
  $("status").textContent = text;
}

// -- the token -------------------------------------------------------------------------------

function showTokenState() {
  $("token-state").textContent = sessionStorage.getItem(TOKEN_KEY) ? "token set for this tab" : "no token entered";
}

async function useToken(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  $("token").value = "";
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  showTokenState();
  clearError();
  try {
    await api("/models");  // a cheap authenticated request: says at once whether the token is right
    $("token-state").textContent = "token accepted";
    if (!$("view-models").hidden) await loadModels();
  } catch (error) {
    showError(error);
  }
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
}

// -- detect ----------------------------------------------------------------------------------

async function detect(file) {
  clearError();
  $("result").hidden = true;
  setStatus(`Scoring ${file.name}…`);
  const k = Math.max(0, Math.min(100, parseInt($("k").value, 10) || 0));
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const answer = await (await api(`/detect?k=${k}`, { method: "POST", body: form })).json();
    renderVerdict(file, answer.results[0]);
    setStatus(`Scored by head ${answer.head_version}.`);
    await renderNeighbors(answer.results[0].neighbors);
  } catch (error) {
    setStatus("");
    showError(error);
  }
}

function renderVerdict(file, result) {
  releaseObjectUrls();
  $("query-image").src = remember(URL.createObjectURL(file));
  $("query-name").textContent = file.name;
  const verdict = $("verdict");
  verdict.textContent = result.synthetic ? "Likely AI-generated" : "Not flagged: likely real";
  verdict.className = result.synthetic ? "synthetic" : "real";
  verdict.dataset.synthetic = String(result.synthetic);
  const relation = result.score >= result.threshold ? "≥" : "<";
  $("score-line").textContent = `score ${fixed(result.score)} ${relation} threshold ${fixed(result.threshold)}`;
  $("score-line").dataset.score = String(result.score);
  $("score-line").dataset.threshold = String(result.threshold);
  $("score-bar").style.width = `${percent(result.score)}%`;
  $("score-bar").className = result.synthetic ? "synthetic" : "real";
  $("threshold-mark").style.left = `${percent(result.threshold)}%`;
  renderAttribution(result.attribution || {});
  $("result").hidden = false;
}

function percent(value) {
  return Math.max(0, Math.min(100, value * 100));
}

function renderAttribution(attribution) {
  const body = $("attribution").tBodies[0];
  body.replaceChildren();
  const top = attribution.top && attribution.top.length ? attribution.top
    : attribution.generator ? [{ generator: attribution.generator, probability: attribution.probability }] : [];
  for (const entry of top) body.appendChild(row([entry.generator, fixed(entry.probability, 3)]));
  if (typeof attribution.real_probability === "number") {
    body.appendChild(row([el("em", "real"), fixed(attribution.real_probability, 3)]));
  }
  $("attribution-note").textContent = attribution.note || "";
  $("attribution-note").hidden = !attribution.note;
}

async function renderNeighbors(neighbors) {
  const list = $("neighbors");
  list.replaceChildren();
  $("no-neighbors").hidden = neighbors.length > 0;
  const loads = neighbors.map((neighbor) => {
    const image = el("img");
    image.alt = `nearest known fake from ${neighbor.generator || "an unknown generator"}`;
    const caption = el("figcaption");
    caption.append(el("strong", neighbor.generator || "unknown generator"), el("br"),
                   el("span", `similarity ${fixed(neighbor.score, 3)}`, "similarity"));
    const figure = el("figure");
    figure.append(image, caption);
    const item = el("li");
    item.appendChild(figure);
    list.appendChild(item);
    return loadThumbnail(image, neighbor.image_id, caption);
  });
  await Promise.all(loads);
}

async function loadThumbnail(image, imageId, caption) {
  try {
    const blob = await (await api(`/thumbnail/${encodeURIComponent(imageId)}?size=${THUMBNAIL_SIZE}`)).blob();
    image.src = remember(URL.createObjectURL(blob));
  } catch (error) {
    image.classList.add("missing");
    caption.append(el("br"), el("span", `no preview: ${error.message}`, "small"));
  }
}

function remember(url) {
  objectUrls.push(url);
  return url;
}

function releaseObjectUrls() {
  while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
}

function wireUpload() {
  const drop = $("drop");
  $("file").addEventListener("change", () => {
    if ($("file").files.length) detect($("file").files[0]);
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) detect(event.dataTransfer.files[0]);
  });
}

// -- models ----------------------------------------------------------------------------------

async function loadModels() {
  clearError();
  setStatus("Reading the head registry…");
  try {
    const registry = await (await api("/models")).json();
    renderModels(registry);
    setStatus("");
    if (registry.champion) await showModel(registry.champion);
  } catch (error) {
    setStatus("");
    showError(error);
  }
}

function renderModels(registry) {
  $("champion-line").textContent = registry.champion ? `Champion: ${registry.champion}`
    : "No champion yet: train one with `synthwatch train`.";
  const body = $("models-table").tBodies[0];
  body.replaceChildren();
  for (const model of registry.models) {
    const open = el("button", "checks");
    open.type = "button";
    open.addEventListener("click", () => showModel(model.version));
    const gate = (model.decision || "undecided") + (model.forced ? " (forced)" : "");
    const actions = el("span");
    actions.append(open, ...(model.report ? [" ", reportButton(model.version)] : []));
    const tr = row([model.version + (model.champion ? " ★ champion" : ""), model.kind, model.created_at.slice(0, 19),
                    gate, fixed(model.metrics && model.metrics.mean_auroc, 3), actions]);
    if (model.champion) tr.className = "champion";
    body.appendChild(tr);
  }
  const audit = $("audit-table").tBodies[0];
  audit.replaceChildren();
  for (const entry of registry.audit.slice().reverse()) {
    audit.appendChild(row([(entry.at || "").slice(0, 19), describeAction(entry), entry.version, entry.who,
                           entry.reason]));
  }
}

function describeAction(entry) {
  const parts = [entry.action];
  if (entry.decision) parts.push(entry.decision);
  if (entry.forced) parts.push("forced");
  if (entry.before !== undefined) parts.push(`(before: ${entry.before || "none"})`);
  return parts.join(" ");
}

async function showModel(version) {
  const target = $("model-details");
  try {
    const record = await (await api(`/models/${encodeURIComponent(version)}`)).json();
    target.replaceChildren(modelDetails(record));
  } catch (error) {
    showError(error);
  }
}

function modelDetails(record) {
  const box = el("article", null, "model");
  box.dataset.version = record.version;
  box.appendChild(el("h2", `${record.version}${record.champion ? " (champion)" : ""}: ${record.kind}`));
  const gate = record.gate;
  if (!gate) {
    box.appendChild(el("p", "Never judged by the gate."));
    return box;
  }
  box.appendChild(el("p", `Gate: ${gate.decision}${gate.forced ? " (forced)" : ""}` +
                          (gate.decided_at ? ` at ${gate.decided_at.slice(0, 19)}` : "")));
  const reasons = el("ul");
  for (const reason of gate.reasons || []) reasons.appendChild(el("li", reason));
  box.appendChild(reasons);
  box.appendChild(checksTable(gate.checks || []));
  if (record.report) box.appendChild(el("p")).append("Evaluation report: ", reportButton(record.version));
  return box;
}

function checksTable(checks) {
  const table = el("table", null, "checks");
  const head = table.createTHead().insertRow();
  for (const name of ["check", "result", "value", "threshold", "interval", "detail"]) head.appendChild(el("th", name));
  const body = table.createTBody();
  for (const check of checks) {
    const verdict = el("span", check.passed ? "passed" : "failed", check.passed ? "passed" : "failed");
    const interval = Array.isArray(check.interval) ? `[${fixed(check.interval[0])}, ${fixed(check.interval[1])}]` : "";
    body.appendChild(row([check.name, verdict, fixed(check.value), fixed(check.threshold), interval, check.detail]));
  }
  return table;
}

// Reports the records name: links when they are web addresses; a path on the service's machine
// is shown as text (the service never serves files by path).
// A report is fetched with the token and opened from memory (its styles are inline: the page's
// policy allows inline styles, never inline scripts).
function reportButton(version) {
  const button = el("button", "report");
  button.type = "button";
  button.className = "report";
  button.addEventListener("click", () => openReport(version));
  return button;
}

async function openReport(version) {
  clearError();
  const reportWindow = window.open("", "_blank");  // opened on the click, before the fetch, so it is not blocked
  try {
    const html = await (await api(`/reports/${encodeURIComponent(version)}`)).text();
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    reportWindow.location = url;
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    reportWindow.close();
    showError(error);
  }
}

// -- views -----------------------------------------------------------------------------------

function showView(name) {
  for (const view of ["detect", "models"]) {
    $(`view-${view}`).hidden = view !== name;
    $(`tab-${view}`).setAttribute("aria-pressed", String(view === name));
  }
  clearError();
  setStatus("");
  if (name === "models") loadModels();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", useToken);
  $("forget-token").addEventListener("click", forgetToken);
  $("tab-detect").addEventListener("click", () => showView("detect"));
  $("tab-models").addEventListener("click", () => showView("models"));
  wireUpload();
  showTokenState();
});
