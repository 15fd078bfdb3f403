// The project page's only script: the lineage search and the live service panel.
// Values from the server go into the page as text (textContent), never as HTML.
"use strict";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(value, digits, suffix) {
  if (value === null || value === undefined) return "-";
  return Number(value).toFixed(digits) + (suffix || "");
}

async function trace(event) {
  event.preventDefault();
  const input = document.getElementById("lineage-input");
  const out = document.getElementById("lineage-result");
  out.replaceChildren(el("p", "muted", "tracing…"));
  const response = await fetch("/api/lineage?request_id=" + encodeURIComponent(input.value));
  const data = await response.json();
  if (data.error) {
    out.replaceChildren(el("p", "error", data.error));
    return;
  }
  const list = el("ol", "lineage-steps");
  for (const step of data.steps) {
    const item = el("li", "depth-" + Math.min(step.depth, 8));
    item.append(el("span", "badge kind", step.kind), " ", el("span", "mono", step.digest.slice(0, 24)));
    if (step.path) item.append(" ", el("span", "mono muted", step.path));
    if (step.summary) item.append(el("div", "muted", step.summary));
    list.append(item);
  }
  out.replaceChildren(el("p", null, "Request " + data.request_id + ":"), list);
}

function stat(label, value) {
  const box = el("div", "stat");
  box.append(el("span", "label", label), el("span", "value", value));
  return box;
}

async function refreshService() {
  const body = document.getElementById("service-body");
  const tile = document.getElementById("service-tile");
  let data;
  try {
    const response = await fetch("/api/service");
    data = await response.json();
  } catch (error) {
    return;  // the page's own server stopped: keep the last figures
  }
  if (!data.running) {
    body.replaceChildren(el("p", "muted", "not running: nothing answers at " + data.url + " (start it with conveyor serve)"));
    tile.textContent = "not running";
    return;
  }
  tile.textContent = "running " + data.model;
  const grid = el("div", "stats");
  grid.append(
    stat("model", data.model),
    stat("requests", fmt(data.requests, 0)),
    stat("rate", data.rate === null ? "measuring…" : fmt(data.rate, 1, " req/s")),
    stat("errors", fmt(data.errors, 0)),
    stat("predictions", fmt(data.predictions, 0)),
    stat("latency p50", data.latency_p50_ms === null ? "-" : "≤ " + fmt(data.latency_p50_ms, 1, " ms")),
    stat("latency p99", data.latency_p99_ms === null ? "-" : "≤ " + fmt(data.latency_p99_ms, 1, " ms")),
    stat("rows per batch", fmt(data.batch_mean, 1) + " mean, ≤ " + fmt(data.batch_p99, 0) + " p99"),
    stat("hot swaps", fmt(data.reloads, 0)),
  );
  body.replaceChildren(grid);
}

document.getElementById("lineage-form").addEventListener("submit", trace);
refreshService();
setInterval(refreshService, 3000);
