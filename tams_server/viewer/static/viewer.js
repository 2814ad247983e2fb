// The viewer page: sign-in, sources and flows, a flow's details, its timeline, a segment's
// details and playback. Read-only: the page only ever GETs.

import * as api from "./api.js";
import { Player, pickUrl } from "./player.js";
import { Timeline } from "./timeline.js";
import { formatDuration, formatTimerange, parseTimerange, parseTimestamp } from "./timerange.js";

const $ = (id) => document.getElementById(id);
const FLOW_PAGE = 50;

const state = { flow: null, source: null, flowsNext: null, sourcesNext: null, selected: null };

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function shortFormat(format) {
  return (format || "").split(":").pop();
}

function describeError(error) {
  if (error instanceof api.ApiError) return `${error.status}: ${error.message}`;
  return error.message;
}

// ---------------------------------------------------------------- signing in

/** Run an API call; on 401 show the sign-in form (and return null). */
async function guarded(call) {
  try {
    return await call();
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 401) {
      showSignIn(api.signedIn() ? "The server refused these credentials." : "");
      return null;
    }
    throw error;
  }
}

function showSignIn(message) {
  api.signOut();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("signin-error").textContent = message;
  player.stop();
  const kind = document.querySelector("input[name=kind]:checked").value;
  $(kind === "bearer" ? "token" : "user").focus();
}

function showApp() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = !api.signedIn();
  $("who").textContent = api.signedIn()
    ? `Signed in (${api.token() ? "bearer token" : "user name and password"})`
    : "This server needs no credentials";
}

async function start() {
  // Does the API answer without credentials?
  const probe = await guarded(() => api.get("flows", { limit: 1 }));
  if (probe === null) return;
  await enter();
}

async function enter() {
  showApp();
  await Promise.all([loadFlows(true), loadSources(true)]);
  await applyHash();
}

/** "#flow=<id>&view=<timerange>": a link to a flow and a window of its timeline. */
async function applyHash() {
  const wanted = new URLSearchParams(location.hash.slice(1));
  const flowId = wanted.get("flow");
  if (!flowId) return;
  if (!state.flow || state.flow.id !== flowId) await openFlow(flowId);
  const view = wanted.get("view");
  if (view && state.flow && state.flow.id === flowId) {
    try {
      const range = parseTimerange(view);
      if (!range.empty && range.start !== null && range.end !== null) timeline.show(range.start, range.end);
    } catch {
      // not a timerange: keep the view
    }
  }
}

window.addEventListener("hashchange", () => {
  if (!$("app").hidden) applyHash();
});

for (const radio of document.querySelectorAll("input[name=kind]")) {
  radio.addEventListener("change", () => {
    const bearer = document.querySelector("input[name=kind]:checked").value === "bearer";
    $("bearer-fields").hidden = !bearer;
    $("basic-fields").hidden = bearer;
  });
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const kind = document.querySelector("input[name=kind]:checked").value;
  if (kind === "bearer") api.signIn("bearer", $("token").value);
  else api.signIn("basic", $("password").value, $("user").value);
  // The form forgets what was typed: the credentials live in api.js only.
  $("token").value = "";
  $("password").value = "";
  $("signin-error").textContent = "";
  try {
    await api.get("flows", { limit: 1 });
  } catch (error) {
    showSignIn(error.status === 401 ? "The server refused these credentials." : describeError(error));
    return;
  }
  await enter();
});

$("sign-out").addEventListener("click", () => {
  state.flow = null;
  showSignIn("");
});

// ---------------------------------------------------------------- sources and flows

async function loadSources(fresh) {
  const list = $("sources");
  let answer;
  try {
    answer = await guarded(() => (fresh ? api.get("sources", { limit: FLOW_PAGE }) : api.getJson(state.sourcesNext)));
  } catch (error) {
    list.replaceChildren(el("li", { class: "status" }, `The sources could not be listed (${describeError(error)}).`));
    return;
  }
  if (!answer) return;
  if (fresh) list.replaceChildren();
  for (const source of answer.body) {
    list.append(
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "item", onclick: () => filterBySource(source) },
          el("span", { class: "name" }, source.label || source.id),
          el("span", { class: "badges" }, el("span", { class: "badge" }, shortFormat(source.format))),
        ),
      ),
    );
  }
  state.sourcesNext = api.nextLink(answer.response);
  $("sources-more").hidden = !state.sourcesNext;
}

function filterBySource(source) {
  state.source = source;
  const chip = $("filter-source");
  chip.hidden = !source;
  chip.replaceChildren();
  if (source) {
    chip.append(
      `Source: ${source.label || source.id} `,
      el("button", { type: "button", "aria-label": "Any source", onclick: () => filterBySource(null) }, "×"),
    );
  }
  loadFlows(true);
}

function flowParams() {
  const params = { limit: FLOW_PAGE };
  const label = $("filter-label").value.trim();
  if (label) params.label = label;
  if ($("filter-format").value) params.format = $("filter-format").value;
  if (state.source) params.source_id = state.source.id;
  return params;
}

async function loadFlows(fresh) {
  const list = $("flows");
  $("flows-status").textContent = "Loading flows…";
  let answer;
  try {
    answer = await guarded(() => (fresh ? api.get("flows", flowParams()) : api.getJson(state.flowsNext)));
  } catch (error) {
    $("flows-status").textContent = `The flows could not be listed (${describeError(error)}).`;
    return;
  }
  if (!answer) return;
  if (fresh) list.replaceChildren();
  for (const flow of answer.body) list.append(flowItem(flow));
  state.flowsNext = api.nextLink(answer.response);
  $("flows-more").hidden = !state.flowsNext;
  const shown = list.children.length;
  $("flows-status").textContent = shown ? `${shown} flow${shown === 1 ? "" : "s"}${state.flowsNext ? " (more to load)" : ""}` : "No flows.";
}

function flowItem(flow) {
  const tags = Object.entries(flow.tags || {}).slice(0, 3);
  return el(
    "li",
    {},
    el(
      "button",
      {
        type: "button",
        class: "item",
        "data-flow-id": flow.id,
        "aria-current": state.flow && state.flow.id === flow.id ? "true" : null,
        onclick: () => openFlow(flow.id),
      },
      el("span", { class: "name" }, flow.label || flow.id),
      el(
        "span",
        { class: "badges" },
        el("span", { class: `badge ${shortFormat(flow.format)}` }, shortFormat(flow.format)),
        flow.codec ? el("span", { class: "badge" }, flow.codec) : null,
        flow.container ? el("span", { class: "badge" }, flow.container) : null,
        tags.map(([name, value]) => el("span", { class: "badge tag" }, `${name}: ${value}`)),
      ),
    ),
  );
}

$("filter").addEventListener("submit", (event) => {
  event.preventDefault();
  loadFlows(true);
});
$("filter-format").addEventListener("change", () => loadFlows(true));
$("flows-more").addEventListener("click", () => loadFlows(false));
$("sources-more").addEventListener("click", () => loadSources(false));

// ---------------------------------------------------------------- a flow

function metaRows(target, rows) {
  target.replaceChildren();
  for (const [name, value] of rows) {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) continue;
    target.append(el("dt", {}, name), el("dd", {}, value));
  }
}

function flowLink(id, text) {
  return el("button", { type: "button", class: "link", onclick: () => openFlow(id) }, text || id);
}

function essence(parameters) {
  if (!parameters) return null;
  const parts = [];
  if (parameters.frame_width) parts.push(`${parameters.frame_width}×${parameters.frame_height}`);
  const rate = parameters.frame_rate;
  if (rate) parts.push(`${rate.numerator / (rate.denominator || 1)} fps`);
  if (parameters.sample_rate) parts.push(`${parameters.sample_rate} Hz`);
  if (parameters.channels) parts.push(`${parameters.channels} channels`);
  return parts.join(", ") || JSON.stringify(parameters);
}

async function openFlow(flowId) {
  let answer;
  try {
    answer = await guarded(() => api.get(`flows/${encodeURIComponent(flowId)}`, { include_timerange: true }));
  } catch (error) {
    $("flows-status").textContent = `Flow ${flowId}: ${describeError(error)}`;
    return;
  }
  if (!answer) return;
  const flow = answer.body;
  state.flow = flow;
  state.selected = null;
  for (const item of document.querySelectorAll("#flows .item")) {
    if (item.dataset.flowId === flow.id) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
  $("flow-empty").hidden = true;
  $("flow-view").hidden = false;
  $("flow-title").textContent = flow.label || flow.id;
  const tags = Object.entries(flow.tags || {}).map(([k, v]) => el("span", { class: "badge tag" }, `${k}: ${Array.isArray(v) ? v.join(", ") : v}`));
  const collection = (flow.flow_collection || []).map((c) => el("span", { class: "member" }, flowLink(c.id), c.role ? ` (${c.role})` : ""));
  const collectedBy = (flow.collected_by || []).map((id) => flowLink(id));
  const range = flow.timerange ? parseTimerange(flow.timerange) : null;
  const extent = range && !range.empty && range.start !== null && range.end !== null ? range : null;
  metaRows($("flow-meta"), [
    ["ID", el("code", {}, flow.id)],
    ["Description", flow.description],
    ["Format", shortFormat(flow.format)],
    ["Codec", flow.codec],
    ["Container", flow.container],
    ["Essence", essence(flow.essence_parameters)],
    ["Source", el("button", { type: "button", class: "link", onclick: () => filterBySource({ id: flow.source_id }) }, flow.source_id)],
    ["Timerange", flow.timerange ? el("code", {}, flow.timerange) : null],
    ["Duration", extent ? formatDuration(extent.end - extent.start) : null],
    ["Read-only", flow.read_only ? "yes" : null],
    ["Status", flow.status],
    ["Tags", tags],
    ["Collects", collection],
    ["Collected by", collectedBy],
  ]);
  showSegment(null);
  timeline.setFlow(flow.id, extent ? extent.start : null, extent ? extent.end : null);
  setUpPlayback(flow);
}

// ---------------------------------------------------------------- the timeline and a segment

async function listSegments(params, signal) {
  const { body, response } = await api.get(`flows/${encodeURIComponent(state.flow.id)}/segments`, params, { signal });
  return { segments: body, more: api.nextLink(response) !== null };
}

const timeline = new Timeline($("timeline"), $("timeline-summary"), {
  listSegments,
  onSelect: (segment) => selectSegment(segment),
  // The address bar links to what is shown (replaceState: no history entry per zoom).
  onView: (view) => history.replaceState(null, "", `#flow=${state.flow.id}&view=${view}`),
});

$("zoom-in").addEventListener("click", () => timeline.zoom(0.5));
$("zoom-out").addEventListener("click", () => timeline.zoom(2));
$("zoom-fit").addEventListener("click", () => timeline.fit());
$("pan-left").addEventListener("click", () => timeline.pan(-timeline.width() / 4));
$("pan-right").addEventListener("click", () => timeline.pan(timeline.width() / 4));

async function selectSegment(segment) {
  // The timeline's listing has no URLs (cheaper): ask for this one segment with its get_urls.
  const flow = state.flow;
  let found = null;
  try {
    const { body } = await api.get(`flows/${encodeURIComponent(flow.id)}/segments`, { timerange: segment.timerange, limit: 10 });
    found = body.find((s) => s.timerange === segment.timerange) || null;
  } catch (error) {
    $("segment-empty").textContent = `The segment could not be read (${describeError(error)}).`;
  }
  if (flow !== state.flow) return;
  state.selected = found;
  showSegment(found);
}

function urlList(urls) {
  if (!urls || !urls.length) return null;
  return el(
    "ul",
    { class: "urls" },
    urls.map((u) => el("li", {}, el("a", { href: u.url, rel: "noreferrer", target: "_blank" }, u.label || u.url), u.presigned ? " (presigned)" : "")),
  );
}

function showSegment(segment) {
  $("segment-empty").hidden = Boolean(segment);
  if (!segment) $("segment-empty").textContent = "Click a segment on the timeline.";
  $("play").textContent = segment ? "Play from this segment" : "Play from the start of the view";
  if (!segment) {
    $("segment").replaceChildren();
    return;
  }
  const range = parseTimerange(segment.timerange);
  metaRows($("segment"), [
    ["Timerange", el("code", {}, segment.timerange)],
    ["Duration", range.start !== null && range.end !== null ? formatDuration(range.end - range.start) : null],
    ["Object", el("code", { class: "object-id" }, segment.object_id)],
    ["ts_offset", segment.ts_offset ? el("code", {}, segment.ts_offset) : "0:0"],
    ["Object timerange", segment.object_timerange ? el("code", {}, segment.object_timerange) : null],
    ["get_urls", urlList(segment.get_urls)],
    ["Init object", segment.init_object ? el("code", {}, segment.init_object.object_id) : null],
    ["Init get_urls", segment.init_object ? urlList(segment.init_object.get_urls) : null],
  ]);
}

// ---------------------------------------------------------------- playback

const player = new Player($("video"), {
  say: (text) => {
    $("player-status").textContent = text;
  },
  onTime: (t) => timeline.setPlayhead(t === null ? null : Number(t - timeline.origin)),
  segmentsUrl: (flowId, params) => api.apiUrl(`flows/${encodeURIComponent(flowId)}/segments`, params),
});

function hlsLink(flow) {
  const url = new URL(`../hls/flows/${encodeURIComponent(flow.id)}.m3u8`, document.baseURI);
  if (api.token()) url.searchParams.set("access_token", api.token());
  const note = api.signedIn() && !api.token() ? " (the player needs the API's user name and password)" : "";
  return el("span", {}, "HLS playlist for VLC, ffplay or Safari: ", el("a", { href: url.href, id: "hls-link", rel: "noreferrer" }, url.pathname), note);
}

function playable(flow) {
  return Player.available() && ["video/mp4", "audio/mp4"].includes(flow.container);
}

function setUpPlayback(flow) {
  player.stop();
  $("player-status").textContent = "";
  $("hls").replaceChildren(hlsLink(flow));
  const inPage = playable(flow);
  $("video").hidden = true;
  $("play").hidden = !inPage;
  if (!inPage) {
    $("player-status").textContent = flow.container
      ? `${flow.container} does not play in the page (only fragmented MP4 does): open the HLS playlist in a player.`
      : "This flow has no container: nothing to play.";
  }
}

$("play").addEventListener("click", async () => {
  const flow = state.flow;
  let from = null;
  if (state.selected) from = parseTimerange(state.selected.timerange).start;
  else if (timeline.extent) from = timeline.origin + BigInt(Math.max(0, Math.floor(timeline.view().start)));
  $("video").hidden = false;
  try {
    const started = await player.play(flow, from);
    if (!started) $("video").hidden = true;
  } catch (error) {
    $("player-status").textContent = `Playback failed: ${describeError(error)}`;
  }
});

// Exposed for tests and the console: what the timeline asked for.
window.tamsViewer = { timeline, player, state, formatTimerange, parseTimestamp, pickUrl };

start().catch((error) => {
  $("signin").hidden = false;
  $("signin-error").textContent = `The API did not answer (${describeError(error)}).`;
});
