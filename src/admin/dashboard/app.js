// Meridian's operator dashboard. The page holds no data of its own: everything shown comes
// from the admin API's JSON endpoints, polled every POLL_MS. When the API wants a token, the
// page asks for it once, keeps it in sessionStorage (this tab only) and sends it as an
// Authorization header; it never goes into a URL.

import { LAND, WATER } from "/dashboard/world.js";

/** How often the page polls the API, in milliseconds. */
const POLL_MS = 1500;
/** The window answer shares are computed over, in milliseconds. */
const SHARE_WINDOW_MS = 5_000;
/** sessionStorage keys. */
const TOKEN_KEY = "meridian.admin.token";
const ACTOR_KEY = "meridian.admin.actor";
/** Who changes are attributed to when the operator gives no name. */
const DEFAULT_ACTOR = "dashboard";
/** How long after a rollback a drill is still watched for the region's first answer. */
const WATCH_AFTER_ROLLBACK_MS = 600_000;

/** The map: an equirectangular projection cropped to the latitudes where people live. */
const MAP = { width: 1000, north: 84, south: -58 };
MAP.height = (MAP.width * (MAP.north - MAP.south)) / 360;

const SVG_NS = "http://www.w3.org/2000/svg";

/** Names of drill timeline events, for people. */
const EVENT_TITLES = {
  started: "Drill started",
  region_out: "Region out of new answers",
  first_answer_without_region: "First answer without the region",
  ttl_horizon: "TTL horizon: caches have moved",
  rolled_back: "Rolled back",
  first_answer_with_region: "First answer with the region again",
};

const state = {
  status: null,
  samples: [],
  clockOffset: 0,
  drills: [],
  drillsRevision: null,
  selectedRegion: null,
  selectedDrill: null,
  pinnedDrill: false,
  needToken: false,
  lastUpdate: 0,
  timer: null,
  polling: false,
  again: false,
  mapRegions: "",
  cards: new Map(),
  markers: new Map(),
  historyKey: "",
  labelScale: 1,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Creates an element with properties and children; text is always set as text, never HTML. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Creates an SVG element with attributes. */
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

const $ = (selector, root = document) => root.querySelector(selector);

/** The server's clock now, in milliseconds since the epoch. */
const serverNow = () => Date.now() + state.clockOffset;

/** An RFC 3339 time from the API as milliseconds, or null. */
const time = (text) => (text ? Date.parse(text) : null);

/** A duration in milliseconds in words: "850 ms", "4.2 s", "3 min 10 s", "2 h 5 min". */
function duration(ms) {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)} ms`;
  if (abs < 10_000) return `${(abs / 1000).toFixed(1)} s`;
  if (abs < 60_000) return `${Math.round(abs / 1000)} s`;
  if (abs < 3_600_000) {
    const min = Math.floor(abs / 60_000);
    const sec = Math.round((abs % 60_000) / 1000);
    return sec ? `${min} min ${sec} s` : `${min} min`;
  }
  const hours = Math.floor(abs / 3_600_000);
  const min = Math.round((abs % 3_600_000) / 60_000);
  return min ? `${hours} h ${min} min` : `${hours} h`;
}

/** How long ago `at` (ms) was. */
function ago(at) {
  const ms = serverNow() - at;
  return ms < 1500 ? "just now" : `${duration(ms)} ago`;
}

/** How long until `at` (ms). */
function until(at) {
  const ms = at - serverNow();
  return ms <= 0 ? "now" : `in ${duration(ms)}`;
}

/** A local wall-clock time. */
function clock(at) {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

/** A rate per second, rounded for reading. */
function rate(perSecond) {
  if (perSecond === 0) return "0";
  if (perSecond < 10) return perSecond.toFixed(1);
  return Math.round(perSecond).toLocaleString();
}

/** A share from 0 to 1 as a percentage. */
function percent(share) {
  if (share > 0 && share < 0.01) return "<1%";
  return `${Math.round(share * 100)}%`;
}

/** The name changes are attributed to: what the operator gave, printable ASCII only. */
function actor() {
  const name = (sessionStorage.getItem(ACTOR_KEY) || "").replace(/[^\x20-\x7e]/g, "").trim();
  return name.slice(0, 64) || DEFAULT_ACTOR;
}

/** Shows a short message in the corner. */
function toast(message, kind = "info") {
  const node = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", text: message });
  $("#toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 8000 : 4500);
}

/** The region's colour class for answer shares, by its position in the status. */
function colourClass(region) {
  const regions = state.status?.regions ?? [];
  const index = regions.findIndex((r) => r.name === region);
  return index < 0 ? "cnone" : `c${index % 8}`;
}

// ---------------------------------------------------------------------------------------------
// The API

/** An error answer of the API. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; throws ApiError. A 401 opens the token dialog. */
async function api(method, path, body) {
  const headers = { Accept: "application/json", "X-Meridian-Actor": actor() };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the admin API (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401) {
    askForToken(token ? "The API refused this token. Check admin.token_file on the server." : "");
    throw new ApiError(401, "unauthorized", data?.message ?? "a token is needed");
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.code ?? `http_${response.status}`, data?.message ?? text);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Polling

/** Reads everything the page shows, renders it, and schedules the next round. */
async function poll() {
  clearTimeout(state.timer);
  if (state.needToken) return;
  if (state.polling) {
    state.again = true;
    return;
  }
  state.polling = true;
  state.again = false;
  try {
    const [status, answers] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/answers")]);
    state.status = status;
    addSample(answers);
    await refreshDrills(status);
    state.lastUpdate = Date.now();
    render();
    setLive("ok");
  } catch (err) {
    if (err.status === 401) {
      setLive("auth", "Token needed");
    } else {
      setLive("error", `Connection problem: ${err.message}`);
    }
  } finally {
    state.polling = false;
  }
  if (!state.needToken) state.timer = setTimeout(poll, state.again ? 0 : POLL_MS);
}

/** Keeps the answer counters of the last window; server time stamps them. */
function addSample(answers) {
  const at = time(answers.at) ?? Date.now();
  state.clockOffset = at - Date.now();
  const last = state.samples[state.samples.length - 1];
  // A restarted server counts from zero again: start over.
  if (last && totalOf(answers.services) < totalOf(last.services)) state.samples = [];
  state.samples.push({ at, services: answers.services });
  const cutoff = at - SHARE_WINDOW_MS - 2 * POLL_MS;
  while (state.samples.length > 2 && state.samples[0].at < cutoff) state.samples.shift();
}

/** Every answer of every service in a reading. */
function totalOf(services) {
  return services.reduce((sum, service) => sum + service.total, 0);
}

/** The oldest and newest readings within the share window, or null before two readings. */
function sampleWindow() {
  const newest = state.samples[state.samples.length - 1];
  if (!newest) return null;
  const oldest = state.samples.find((sample) => sample.at >= newest.at - SHARE_WINDOW_MS - 100);
  if (!oldest || oldest === newest || newest.at <= oldest.at) return null;
  return { oldest, newest, seconds: (newest.at - oldest.at) / 1000 };
}

/** Answers per region of one service over the window: [{region, count}], and the total. */
function serviceDeltas(name) {
  const window = sampleWindow();
  if (!window) return null;
  const before = window.oldest.services.find((s) => s.name === name);
  const after = window.newest.services.find((s) => s.name === name);
  if (!after) return null;
  const regions = after.regions.map((entry) => {
    const earlier = before?.regions.find((r) => r.region === entry.region)?.answers ?? 0;
    return { region: entry.region, count: Math.max(0, entry.answers - earlier) };
  });
  const total = regions.reduce((sum, r) => sum + r.count, 0);
  return { regions, total, seconds: window.seconds };
}

/** Answers per second each region is getting now, over every service. */
function regionRates() {
  const rates = new Map();
  const window = sampleWindow();
  if (!window) return rates;
  for (const service of window.newest.services) {
    const deltas = serviceDeltas(service.name);
    if (!deltas) continue;
    for (const { region, count } of deltas.regions) {
      rates.set(region, (rates.get(region) ?? 0) + count / window.seconds);
    }
  }
  return rates;
}

/** Reloads the drill list when the book changed, and the shown drill while it is live. */
async function refreshDrills(status) {
  if (status.revision !== state.drillsRevision) {
    const list = await api("GET", "/v1/drills");
    state.drills = list.drills;
    state.drillsRevision = status.revision;
  }
  if (!state.pinnedDrill) {
    const running = state.drills.filter((d) => d.state === "running");
    const latest = running[running.length - 1] ?? state.drills[state.drills.length - 1];
    state.selectedDrill = latest ? latest.id : null;
  }
  const shown = state.drills.find((d) => d.id === state.selectedDrill);
  if (shown && drillIsLive(shown)) {
    const fresh = await api("GET", `/v1/drills/${shown.id}`);
    state.drills = state.drills.map((d) => (d.id === fresh.id ? fresh : d));
  }
}

/** Whether a drill's timeline can still change. */
function drillIsLive(drill) {
  if (drill.state === "running") return true;
  const rolledBack = time(drill.rolled_back);
  const done = drill.timeline.some((event) => event.kind === "first_answer_with_region");
  return !done && rolledBack !== null && serverNow() - rolledBack < WATCH_AFTER_ROLLBACK_MS;
}

/** Shows whether the page is live. */
function setLive(mode, message) {
  const live = $("#live");
  live.dataset.live = mode;
  $("#live-text").textContent =
    mode === "ok" ? "Live" : mode === "auth" ? message : mode === "error" ? "Reconnecting…" : "Connecting…";
  live.title = mode === "error" ? message : mode === "ok" ? `Updated ${new Date().toLocaleTimeString()}` : "";
}

// ---------------------------------------------------------------------------------------------
// The token

/** Opens the token dialog; polling waits until the operator gives a token. */
function askForToken(message) {
  state.needToken = true;
  clearTimeout(state.timer);
  const dialog = $("#token-dialog");
  const error = $("#token-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("#token-actor").value = sessionStorage.getItem(ACTOR_KEY) || "";
  if (!dialog.open) dialog.showModal();
  $("#token-input").focus();
}

/** Wires the token dialog and the "Forget token" button. */
function setUpToken() {
  const dialog = $("#token-dialog");
  // Nothing works without a token, so the dialog cannot be dismissed.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    const name = $("#token-actor").value.trim();
    if (name) sessionStorage.setItem(ACTOR_KEY, name);
    else sessionStorage.removeItem(ACTOR_KEY);
    $("#token-input").value = "";
    dialog.close();
    state.needToken = false;
    updateIdentity();
    poll();
  });
  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ACTOR_KEY);
    location.reload();
  });
}

/** Shows who changes are attributed to, and whether a token is kept. */
function updateIdentity() {
  $("#actor-name").textContent = actor();
  $("#forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Renders everything from the last readings. */
function render() {
  const status = state.status;
  if (!status) return;
  const rates = regionRates();
  renderSummary(status);
  renderMap(status, rates);
  renderRegions(status, rates);
  renderServices(status);
  renderDrill();
  renderHistory();
  fillServiceNames(status);
}

/** The line under the brand, and the not-ready banner. */
function renderSummary(status) {
  const up = status.regions.filter((r) => r.up).length;
  const running = status.drills_running.length;
  const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;
  const parts = [
    plural(status.regions.length, "region"),
    `${up} answering`,
    plural(status.services.length, "service"),
    running ? `${running} drill${running > 1 ? "s" : ""} running` : null,
    `revision ${status.revision}`,
  ].filter(Boolean);
  $("#summary").textContent = parts.join(" · ");
  const banner = $("#banner");
  banner.hidden = status.ready;
  banner.textContent = status.ready
    ? ""
    : "Waiting for the first probe round: until every monitor has answered once, regions show their configured initial state.";
}

/**
 * What a region's state is, as a colour category (up, degraded, down, override) and a label.
 * Drains and drills count as degraded; other operator overrides as overrides.
 */
function describe(region) {
  const active = region.override;
  if (region.drill !== null && region.drill !== undefined) {
    const mode = active?.action === "drain" ? "drain" : "fail";
    return { category: "degraded", label: `Drill #${region.drill} · ${mode}` };
  }
  if (active) {
    switch (active.action) {
      case "drain":
        return region.factor > 0
          ? { category: "degraded", label: `Draining · ${percent(region.factor)}` }
          : { category: "degraded", label: "Drained" };
      case "maintenance":
        return { category: "override", label: "Maintenance" };
      case "force_down":
        return { category: "override", label: "Forced down" };
      case "force_up":
        return { category: "override", label: region.observed_up ? "Forced up" : "Forced up · monitors down" };
      default:
        return { category: "override", label: active.action };
    }
  }
  if (!region.up) return { category: "down", label: "Down" };
  if (region.degraded || region.factor < 1) {
    return { category: "degraded", label: region.factor < 1 ? `Degraded · ${percent(region.factor)}` : "Degraded" };
  }
  return { category: "up", label: "Up" };
}

/** Projects a [lat, lon] location onto the map. */
function project([lat, lon]) {
  const x = ((lon + 180) / 360) * MAP.width;
  const y = ((MAP.north - Math.max(MAP.south, Math.min(MAP.north, lat))) / (MAP.north - MAP.south)) * MAP.height;
  return [x, y];
}

/** An SVG path for a flattened lon, lat outline. */
function outline(points) {
  const parts = [];
  for (let i = 0; i < points.length; i += 2) {
    const [x, y] = project([points[i + 1], points[i]]);
    parts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  return `M${parts.join("L")}Z`;
}

/** Draws the land, the seas and the graticule once. */
function drawWorld() {
  const map = $("#map");
  map.setAttribute("viewBox", `0 0 ${MAP.width} ${MAP.height.toFixed(1)}`);
  const grid = svg("g", { class: "graticule" });
  for (let lon = -150; lon <= 150; lon += 30) {
    const [x] = project([0, lon]);
    grid.append(svg("line", { x1: x, y1: 0, x2: x, y2: MAP.height }));
  }
  for (let lat = -30; lat <= 60; lat += 30) {
    const [, y] = project([lat, 0]);
    grid.append(svg("line", { x1: 0, y1: y, x2: MAP.width, y2: y }));
  }
  map.append(grid);
  const land = svg("g", { class: "land" });
  for (const shape of LAND) land.append(svg("path", { d: outline(shape.points) }));
  map.append(land);
  const water = svg("g", { class: "water" });
  for (const shape of WATER) water.append(svg("path", { d: outline(shape.points) }));
  map.append(water);
  map.append(svg("g", { id: "markers" }));
}

/** Places the region markers and their labels, and keeps them up to date. */
function renderMap(status, rates) {
  const layer = $("#markers");
  const placed = status.regions.filter((r) => Array.isArray(r.location));
  const key = placed.map((r) => `${r.name}@${r.location.join(",")}`).join("|");
  if (key !== state.mapRegions) {
    state.mapRegions = key;
    layer.replaceChildren();
    state.markers.clear();
    const taken = [];
    for (const region of placed) {
      let [x, y] = project(region.location);
      // Regions in the same place fan out so each stays clickable.
      while (taken.some(([tx, ty]) => Math.hypot(tx - x, ty - y) < 9)) x += 10;
      taken.push([x, y]);
      const marker = buildMarker(region.name, x, y);
      layer.append(marker.group);
      state.markers.set(region.name, marker);
    }
    placeLabels();
    scaleLabels();
  }
  for (const region of placed) {
    const marker = state.markers.get(region.name);
    const { category, label } = describe(region);
    marker.group.dataset.category = category;
    marker.group.classList.toggle("selected", state.selectedRegion === region.name);
    marker.group.setAttribute("aria-label", `${region.name}: ${label}`);
    const perSecond = rates.get(region.name);
    marker.rate.textContent = perSecond === undefined ? label : `${label} · ${rate(perSecond)}/s`;
  }
  const unplaced = status.regions.filter((r) => !Array.isArray(r.location)).map((r) => r.name);
  const note = $("#unplaced");
  note.hidden = unplaced.length === 0;
  note.textContent = unplaced.length
    ? `Not on the map (no location configured): ${unplaced.join(", ")}. Add regions.NAME.location = [lat, lon].`
    : "";
  refreshTooltip();
}

/** One marker: a halo for states that need attention, a selection ring, the dot and labels. */
function buildMarker(name, x, y) {
  const group = svg("g", { class: "marker", tabindex: "0", role: "button", "data-region": name });
  group.append(svg("circle", { class: "halo", cx: x, cy: y, r: 10 }));
  group.append(svg("circle", { class: "selected-ring", cx: x, cy: y, r: 13 }));
  group.append(svg("circle", { class: "dot", cx: x, cy: y, r: 8 }));
  const title = svg("text", { class: "label-name" });
  title.textContent = name;
  const rateText = svg("text", { class: "label-rate" });
  group.append(title, rateText);
  group.addEventListener("click", () => selectRegion(name, true));
  group.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      selectRegion(name, true);
    }
  });
  group.addEventListener("pointerenter", () => showTooltip(name));
  group.addEventListener("pointerleave", hideTooltip);
  group.addEventListener("focus", () => showTooltip(name));
  group.addEventListener("blur", hideTooltip);
  return { group, x, y, title, rate: rateText };
}

/** Puts each label where it overlaps no other label or marker: right, left, below or above. */
function placeLabels() {
  const boxes = [];
  const markers = [...state.markers.values()].sort((a, b) => a.x - b.x);
  for (const marker of markers) boxes.push({ x: marker.x - 9, y: marker.y - 9, w: 18, h: 18 });
  const overlaps = (box) =>
    boxes.some((o) => box.x < o.x + o.w && box.x + box.w > o.x && box.y < o.y + o.h && box.y + box.h > o.y);
  for (const marker of markers) {
    const scale = state.labelScale;
    const width = Math.max(marker.title.textContent.length * 8, 125) * scale;
    const height = 30 * scale;
    const gap = 14 * Math.min(scale, 1.5);
    const candidates = [
      { x: marker.x + gap, y: marker.y - height / 2, anchor: "start" },
      { x: marker.x - gap - width, y: marker.y - height / 2, anchor: "end" },
      { x: marker.x - width / 2, y: marker.y + gap, anchor: "middle" },
      { x: marker.x - width / 2, y: marker.y - gap - height, anchor: "middle" },
    ].map((c) => ({ ...c, w: width, h: height }));
    const inside = (c) => c.x >= 0 && c.x + c.w <= MAP.width && c.y >= 0 && c.y + c.h <= MAP.height;
    const choice = candidates.find((c) => inside(c) && !overlaps(c)) ?? candidates.find(inside) ?? candidates[0];
    boxes.push(choice);
    const textX = choice.anchor === "start" ? choice.x : choice.anchor === "end" ? choice.x + choice.w : choice.x + choice.w / 2;
    for (const [node, dy] of [[marker.title, 12 * scale], [marker.rate, 26 * scale]]) {
      node.setAttribute("x", textX.toFixed(1));
      node.setAttribute("y", (choice.y + dy).toFixed(1));
      node.setAttribute("text-anchor", choice.anchor);
    }
  }
}

/**
 * Keeps map labels readable at any width: the SVG scales with its card, so labels are sized in
 * map units that come out at about 13 px on screen (up to a limit on narrow screens).
 */
function scaleLabels() {
  const width = $("#map").clientWidth || MAP.width;
  const scale = Math.max(1, Math.min(2.4, MAP.width / width));
  if (Math.abs(scale - state.labelScale) < 0.02) return;
  state.labelScale = scale;
  $("#map").style.setProperty("--label-scale", scale.toFixed(3));
  placeLabels();
}

/** The region shown in the tooltip, if any. */
let tooltipRegion = null;

/** Shows the tooltip of a marker. */
function showTooltip(name) {
  tooltipRegion = name;
  refreshTooltip();
}

/** Hides the tooltip. */
function hideTooltip() {
  tooltipRegion = null;
  $("#map-tooltip").hidden = true;
}

/** Fills and places the tooltip from the latest status. */
function refreshTooltip() {
  const tip = $("#map-tooltip");
  const region = state.status?.regions.find((r) => r.name === tooltipRegion);
  const marker = state.markers.get(tooltipRegion);
  if (!region || !marker) {
    tip.hidden = true;
    return;
  }
  const { category, label } = describe(region);
  const monitorsUp = region.monitors.filter((m) => m.up).length;
  const perSecond = regionRates().get(region.name);
  const rows = [
    ["Traffic factor", percent(region.up ? region.factor : 0)],
    ["Capacity", region.capacity ?? "not set"],
    ["Monitors", region.monitors.length ? `${monitorsUp} of ${region.monitors.length} up` : "none"],
    ["Answers", perSecond === undefined ? "—" : `${rate(perSecond)}/s`],
  ];
  if (region.override) rows.push(["Override", `${region.override.action} by ${region.override.who}`]);
  tip.replaceChildren(
    el("h3", {}, el("span", { text: region.name }), el("span", { class: "badge", dataset: { category }, text: label })),
    el("dl", {}, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])),
  );
  const map = $("#map");
  const wrap = $("#map-wrap").getBoundingClientRect();
  const box = map.getBoundingClientRect();
  const scale = box.width / MAP.width;
  const px = marker.x * scale + (box.left - wrap.left);
  const py = marker.y * scale + (box.top - wrap.top);
  tip.hidden = false;
  const width = tip.offsetWidth;
  const height = tip.offsetHeight;
  let left = px + 16;
  if (left + width > wrap.width - 8) left = px - 16 - width;
  let top = py - height / 2;
  top = Math.max(8, Math.min(top, wrap.height - height - 8));
  tip.style.left = `${Math.max(8, left)}px`;
  tip.style.top = `${top}px`;
}

/** Selects a region on the map and in the list. */
function selectRegion(name, scroll) {
  state.selectedRegion = state.selectedRegion === name && !scroll ? null : name;
  for (const [key, card] of state.cards) card.root.classList.toggle("selected", key === state.selectedRegion);
  for (const [key, marker] of state.markers) marker.group.classList.toggle("selected", key === state.selectedRegion);
  if (scroll && state.cards.has(name)) state.cards.get(name).root.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

/** The region cards of the side panel, built once per region and updated in place. */
function renderRegions(status, rates) {
  const container = $("#regions");
  const names = status.regions.map((r) => r.name);
  for (const [name, card] of state.cards) {
    if (!names.includes(name)) {
      card.root.remove();
      state.cards.delete(name);
    }
  }
  if (!status.regions.length) {
    container.replaceChildren(el("p", { class: "empty", text: "No regions are configured." }));
    return;
  }
  container.querySelector(".empty")?.remove();
  status.regions.forEach((region, index) => {
    let card = state.cards.get(region.name);
    if (!card) {
      card = buildRegionCard(region.name);
      state.cards.set(region.name, card);
    }
    if (container.children[index] !== card.root) container.insertBefore(card.root, container.children[index] ?? null);
    updateRegionCard(card, region, rates.get(region.name));
  });
}

/** A region card with its stable controls. */
function buildRegionCard(name) {
  const badge = el("span", { class: "badge" });
  const rateText = el("span", { class: "region-rate" });
  const head = el("div", { class: "region-head" }, el("span", { class: "swatch" }), el("h3", { text: name }), rateText, badge);
  head.addEventListener("click", () => selectRegion(name, false));
  const body = el("div", { class: "region-body" });
  const button = (action, text, extra, handler) =>
    el("button", { type: "button", class: `button small ${extra}`, dataset: { action, region: name }, text, onclick: handler });
  const actions = {
    drain: button("drain", "Drain…", "warn", () => openOverride(name)),
    undrain: button("undrain", "Undrain", "", () => clearOverride(name)),
    clear: button("clear", "Clear override", "", () => clearOverride(name)),
    drill: button("drill", "Drill…", "", () => openDrill(name)),
    abort: button("abort", "Abort drill", "stop", () => abortRegionDrill(name)),
  };
  const root = el(
    "article",
    { class: "region", dataset: { region: name } },
    head,
    body,
    el("div", { class: "region-actions" }, Object.values(actions)),
  );
  return { root, badge, rateText, body, actions, swatch: head.firstChild };
}

/** Fills a region card from the status. */
function updateRegionCard(card, region, perSecond) {
  const { category, label } = describe(region);
  card.root.dataset.category = category;
  card.root.dataset.state = region.state;
  card.root.classList.toggle("selected", state.selectedRegion === region.name);
  card.badge.dataset.category = category;
  card.badge.textContent = label;
  card.swatch.className = `swatch state-${category}`;
  card.rateText.textContent = perSecond === undefined ? "" : `${rate(perSecond)} answers/s`;

  const factor = region.up ? region.factor : 0;
  const facts = el(
    "div",
    { class: "region-facts" },
    fact("Traffic", percent(factor), factor),
    fact("Capacity", region.capacity ?? "—"),
    fact("Max TTL", region.max_ttl ? `${region.max_ttl} s` : "—"),
  );
  const notes = [];
  const active = region.override;
  if (region.drill !== null && region.drill !== undefined) {
    const drill = state.drills.find((d) => d.id === region.drill);
    notes.push(
      el(
        "div",
        { class: "region-note", dataset: { kind: "drill" } },
        el("strong", { text: `Drill #${region.drill}` }),
        drill ? ` (${drill.mode}) by ${drill.who}: “${drill.reason}”. Rolls back ${until(time(drill.ends))}.` : " running.",
      ),
    );
  } else if (active) {
    const ends = time(active.until);
    notes.push(
      el(
        "div",
        { class: "region-note", dataset: { kind: active.action === "drain" ? "drain" : "override" } },
        el("strong", { text: overrideName(active.action) }),
        ` by ${active.who}: “${active.reason}”. Since ${clock(time(active.since))}`,
        ends ? `, lapses ${until(ends)}.` : ", until cleared.",
        region.drained_at
          ? time(region.drained_at) > serverNow()
            ? ` The last cached answers expire ${until(time(region.drained_at))}.`
            : " Every cached answer has expired."
          : "",
      ),
    );
  }
  if (!region.observed_up) {
    const failing = region.monitors.find((m) => !m.up);
    notes.push(
      el(
        "div",
        { class: "region-note", dataset: { kind: "down" } },
        el("strong", { text: "Monitors report down" }),
        failing?.last ? `: ${failing.last}` : ".",
      ),
    );
  }
  const observed = [
    `Observed ${region.observed_up ? "up" : "down"} ${region.observed_since ? `since ${clock(time(region.observed_since))}` : "since start"}`,
    region.last_answer ? `last answer ${ago(time(region.last_answer))}` : "no answers yet",
  ];
  const monitors = region.monitors.length
    ? el(
        "ul",
        { class: "monitors" },
        region.monitors.map((m) =>
          el(
            "li",
            { class: "monitor", title: m.last ?? "" },
            el("span", { class: `swatch state-${m.up ? "up" : "down"}` }),
            el("span", { class: "monitor-url", text: m.url }),
            el("span", { class: "monitor-last", text: monitorLine(m) }),
          ),
        ),
      )
    : el("p", { class: "monitors-empty", text: "No monitors: the region is taken as up." });
  card.body.replaceChildren(facts, ...notes, monitors, el("p", { class: "hint", text: observed.join(" · ") }));

  const drilled = region.drill !== null && region.drill !== undefined;
  const { actions } = card;
  actions.drain.hidden = drilled || Boolean(active);
  actions.undrain.hidden = drilled || active?.action !== "drain";
  actions.clear.hidden = drilled || !active || active.action === "drain";
  actions.drill.hidden = drilled;
  actions.drill.disabled = Boolean(active);
  actions.drill.title = active ? "Clear the override first: a drill's rollback would lift it" : "";
  actions.abort.hidden = !drilled;
}

/** A small labelled figure, with a meter when `share` is given. */
function fact(label, value, share) {
  return el(
    "div",
    { class: "fact" },
    el("span", { class: "fact-label", text: label }),
    el("span", { class: "fact-value", text: String(value) }),
    share === undefined ? null : meter(share),
  );
}

/** A thin bar showing a share from 0 to 1. */
function meter(share) {
  const fill = el("span");
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, share)) * 100)}%`;
  return el("div", { class: "meter" }, fill);
}

/** A monitor's last result, briefly. */
function monitorLine(monitor) {
  const when = time(monitor.last_at);
  if (!when) return "not probed yet";
  return `${monitor.last ?? ""} · ${ago(when)}`;
}

/** The name of an override action. */
function overrideName(action) {
  return { drain: "Drain", maintenance: "Maintenance", force_up: "Forced up", force_down: "Forced down" }[action] ?? action;
}

/** The answer share of every service. */
function renderServices(status) {
  const container = $("#services");
  $("#share-window").textContent = String(SHARE_WINDOW_MS / 1000);
  if (!status.services.length) {
    container.replaceChildren(el("p", { class: "empty", text: "No GSLB services are configured." }));
    return;
  }
  container.replaceChildren(...status.services.map(serviceBlock));
}

/** One service: its policy, a stacked bar of answer shares, and what it answers now. */
function serviceBlock(service) {
  const deltas = serviceDeltas(service.name);
  const head = el(
    "div",
    { class: "service-head" },
    el("span", { class: "service-name", text: service.name }),
    el("span", { class: "service-policy", text: policyLine(service) }),
    service.held ? el("span", { class: "badge service-held", dataset: { category: "override" }, text: "Held on standby" }) : null,
    service.held
      ? el("button", {
          type: "button",
          class: "button small",
          text: "Fail back",
          dataset: { action: "failback", service: service.name },
          onclick: () => failBack(service.name),
        })
      : null,
    el("span", {
      class: "service-rate",
      text: deltas ? `${rate(deltas.total / deltas.seconds)} answers/s` : "measuring…",
    }),
  );
  const bar = el("div", { class: "share-bar", role: "img", dataset: { service: service.name } });
  const legend = el("ul", { class: "share-legend" });
  if (deltas && deltas.total > 0) {
    const parts = deltas.regions.filter((r) => r.count > 0);
    bar.setAttribute("aria-label", parts.map((r) => `${r.region} ${percent(r.count / deltas.total)}`).join(", "));
    for (const part of parts) {
      const share = part.count / deltas.total;
      const segment = el("div", {
        class: `share-seg ${colourClass(part.region)}`,
        dataset: { region: part.region, share: share.toFixed(4) },
        title: `${part.region}: ${percent(share)}`,
        text: share >= 0.12 ? `${part.region} ${percent(share)}` : "",
      });
      segment.style.flexBasis = `${(share * 100).toFixed(2)}%`;
      bar.append(segment);
    }
    for (const part of deltas.regions) {
      if (part.region === "none" && part.count === 0) continue;
      legend.append(
        el(
          "li",
          {},
          el("span", { class: `swatch ${colourClass(part.region)}` }),
          part.region === "none" ? "no region (fallback, NODATA, SERVFAIL)" : part.region,
          el("b", { text: percent(part.count / deltas.total) }),
          `${rate(part.count / deltas.seconds)}/s`,
        ),
      );
    }
  } else {
    bar.classList.add("idle");
    bar.setAttribute("aria-label", "no answers in the window");
    legend.append(
      el("li", { text: deltas ? `No answers in the last ${Math.round(deltas.seconds)} s.` : "Measuring: shares appear after two readings." }),
    );
  }
  return el("div", { class: "service", dataset: { service: service.name } }, head, bar, legend, nowLine(service));
}

/** The policy of a service in a few words. */
function policyLine(service) {
  const ttl = `TTL ${service.ttl} s (${service.ttl_degraded} s degraded)`;
  if (service.policy === "weighted" && service.weights) {
    const weights = Object.entries(service.weights).map(([r, w]) => `${r} ${w}`).join(", ");
    return `weighted: ${weights} · ${ttl}`;
  }
  if (service.policy === "failover" && service.tiers) {
    return `failover: ${service.tiers.map((tier) => tier.join(" + ")).join(" → ")} · ${ttl}`;
  }
  return `${service.policy}${service.map ? ` · map ${service.map}` : ""} · ${ttl}`;
}

/** What the service answers now for its map's entries, grouped by answer. */
function nowLine(service) {
  if (!service.answers?.length) return null;
  const groups = new Map();
  for (const answer of service.answers) {
    const regions = answer.regions.length ? answer.regions.join(", ") : "no region";
    const key = `${regions}${answer.varies_by_client ? " (varies by client)" : ""}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(answer.location);
  }
  const text = [...groups.entries()]
    .slice(0, 4)
    .map(([regions, locations]) => `${locations.slice(0, 3).join(", ")}${locations.length > 3 ? ` +${locations.length - 3}` : ""} → ${regions}`)
    .join(" · ");
  return el("p", { class: "share-now" }, el("strong", { text: "Now: " }), text);
}

/** The drill shown: its state, its timeline drawn on a track, its events and its figures. */
function renderDrill() {
  const container = $("#drill");
  const drill = state.drills.find((d) => d.id === state.selectedDrill);
  if (!drill) {
    if (!container.querySelector(".empty")) {
      container.replaceChildren(
        el("p", { class: "empty", text: "No drill has run yet. Start one from a region, or with “Start a drill…”." }),
      );
    }
    return;
  }
  const running = drill.state === "running";
  const stateBadge = el("span", {
    class: "badge",
    dataset: { category: running ? "degraded" : drill.state === "aborted" ? "neutral" : "up" },
    text: running ? "Running" : drill.state === "aborted" ? "Aborted" : "Finished",
  });
  const abort = running
    ? el("button", {
        type: "button",
        id: "drill-abort",
        class: "button small stop",
        dataset: { action: "abort-drill", drill: drill.id },
        text: "Abort drill",
        onclick: () => abortDrill(drill.id),
      })
    : null;
  const started = time(drill.started);
  const ends = time(drill.ends);
  const meta = [
    `${drill.mode === "fail" ? "Fail" : "Drain"} drill`,
    `started ${clock(started)} by ${drill.who}`,
    `“${drill.reason}”`,
    running ? `rolls back ${until(ends)}` : drill.rolled_back ? `rolled back ${clock(time(drill.rolled_back))}` : null,
    drill.forced ? "capacity check overridden" : null,
  ].filter(Boolean);
  const content = [
    el(
      "div",
      { class: "drill-head" },
      el("h3", { text: `Drill #${drill.id} · ${drill.region}` }),
      stateBadge,
      el("span", { class: "spacer" }),
      abort,
    ),
    el("p", { class: "drill-meta", text: meta.join(" · ") }),
    track(drill),
    measures(drill),
    events(drill),
  ];
  // Keep the abort button if it is already there, so a click in flight is not lost.
  const existing = container.querySelector("#drill-abort");
  if (existing && abort && existing.dataset.drill === String(drill.id)) {
    content[0].replaceChild(existing, abort);
  }
  container.replaceChildren(...content);
}

/** The drill's timeline as a track from start to end, with a tick per event. */
function track(drill) {
  // The track spans what has happened: start to now while running, start to the last event
  // after; the time left is in the text above it.
  const started = time(drill.started);
  const times = drill.timeline.map((e) => time(e.at));
  const running = drill.state === "running";
  const end = Math.max(...times, running ? serverNow() : 0, started + 1000);
  const span = end - started;
  const position = (at) => `${(Math.max(0, Math.min(1, (at - started) / span)) * 100).toFixed(2)}%`;
  const root = el("div", { class: "timeline-track", "aria-hidden": "true" }, el("div", { class: "timeline-line" }));
  const out = time(drill.region_out);
  if (out) {
    const back = time(drill.rolled_back) ?? Math.min(serverNow(), end);
    const bar = el("div", { class: "timeline-out" });
    bar.style.left = position(out);
    bar.style.width = `calc(${position(back)} - ${position(out)})`;
    root.append(bar);
  }
  if (drill.state === "running") {
    const now = el("div", { class: "timeline-now" });
    now.style.left = position(serverNow());
    root.append(now);
  }
  for (const event of drill.timeline) {
    const tick = el("div", { class: "timeline-tick", dataset: { kind: event.kind }, title: EVENT_TITLES[event.kind] ?? event.kind });
    tick.style.left = position(time(event.at));
    root.append(tick);
  }
  root.append(
    el(
      "div",
      { class: "timeline-scale" },
      el("span", { text: clock(started) }),
      el("span", { text: running ? `now, +${duration(span)}` : `+${duration(span)}` }),
    ),
  );
  return root;
}

/** The drill's measured figures. */
function measures(drill) {
  const m = drill.measured ?? {};
  const seconds = (value) => (value === null || value === undefined ? "—" : duration(value * 1000));
  const shareLine = () => {
    const before = drill.share_before?.[drill.region];
    const during = drill.share_during?.[drill.region];
    if (before === undefined && during === undefined) return "—";
    return `${before === undefined ? "—" : percent(before)} → ${during === undefined ? "—" : percent(during)}`;
  };
  const figures = [
    fact("Out → answered elsewhere", seconds(m.first_answer_without_region_s)),
    fact("TTL horizon", seconds(m.ttl_horizon_s)),
    fact("Back → answered again", seconds(m.first_answer_with_region_s)),
    fact(`Share of ${drill.region}`, shareLine()),
  ];
  if (drill.pool_rate_before !== null && drill.pool_rate_before !== undefined) {
    figures.push(
      fact("Pool requests/s before → during", `${rate(drill.pool_rate_before)} → ${drill.pool_rate_during === null ? "—" : rate(drill.pool_rate_during)}`),
    );
  }
  return el("div", { class: "measures" }, figures);
}

/** The drill's events in order, with the ones still to come greyed out. */
function events(drill) {
  const started = time(drill.started);
  const list = el("ol", { class: "timeline", id: "drill-timeline", dataset: { drill: drill.id } });
  for (const event of drill.timeline) {
    const at = time(event.at);
    list.append(
      el(
        "li",
        { class: "event", dataset: { kind: event.kind } },
        el("span", { class: "event-offset", text: at === started ? "0 s" : `+${duration(at - started)}` }),
        el("span", { class: "event-dot" }),
        el(
          "div",
          {},
          el("div", { class: "event-title", text: EVENT_TITLES[event.kind] ?? event.kind }),
          el("div", { class: "event-detail", text: `${clock(at)} · ${event.detail}` }),
        ),
      ),
    );
  }
  const pending = [];
  const has = (kind) => drill.timeline.some((e) => e.kind === kind);
  if (drill.state === "running") {
    if (!drill.region_out) pending.push(["region_out", "when the drain's ramp reaches zero"]);
    if (drill.region_out && !has("first_answer_without_region")) pending.push(["first_answer_without_region", "waiting for answers that leave the region out"]);
    if (drill.ttl_horizon && !has("ttl_horizon")) pending.push(["ttl_horizon", `expected ${until(time(drill.ttl_horizon))}`]);
    pending.push(["rolled_back", `by itself ${until(time(drill.ends))}, or on abort`]);
  } else if (drillIsLive(drill)) {
    pending.push(["first_answer_with_region", "waiting for the region to answer again"]);
  }
  for (const [kind, detail] of pending) {
    list.append(
      el(
        "li",
        { class: "event pending", dataset: { kind } },
        el("span", { class: "event-offset", text: "" }),
        el("span", { class: "event-dot" }),
        el("div", {}, el("div", { class: "event-title", text: EVENT_TITLES[kind] }), el("div", { class: "event-detail", text: detail })),
      ),
    );
  }
  return list;
}

/** Earlier drills, newest first; a click shows one. */
function renderHistory() {
  const container = $("#drill-history");
  const drills = [...state.drills].reverse().slice(0, 8);
  const key = drills.map((d) => `${d.id}:${d.state}`).join(",") + `|${state.selectedDrill}`;
  if (key === state.historyKey) return;
  state.historyKey = key;
  if (drills.length < 2) {
    container.replaceChildren();
    return;
  }
  container.replaceChildren(
    el("h3", { text: "Recent drills" }),
    el(
      "ul",
      {},
      drills.map((d) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              "aria-current": d.id === state.selectedDrill ? "true" : "false",
              onclick: () => {
                state.selectedDrill = d.id;
                state.pinnedDrill = true;
                state.historyKey = "";
                render();
              },
            },
            el("span", { class: "mono", text: `#${d.id}` }),
            el("span", { text: `${d.region} · ${d.mode} · ${d.state}` }),
            el("span", { class: "when", text: clock(time(d.started)) }),
          ),
        ),
      ),
    ),
  );
}

/** Offers the service names in the explain box. */
function fillServiceNames(status) {
  const list = $("#service-names");
  const names = status.services.map((s) => s.name.replace(/\.$/, ""));
  if (list.children.length !== names.length) {
    list.replaceChildren(...names.map((name) => el("option", { value: name })));
  }
  const input = $("#explain-name");
  if (!input.value && !input.dataset.touched && names.length) input.value = names[0];
}

// ---------------------------------------------------------------------------------------------
// Actions

/** Opens the override dialog for a region, with drain chosen. */
function openOverride(region) {
  const dialog = $("#override-dialog");
  const form = $("#override-form");
  form.reset();
  form.dataset.region = region;
  $("#override-region").textContent = region;
  $("#override-error").hidden = true;
  syncOverrideFields();
  dialog.showModal();
  $("#override-reason").focus();
}

/** Shows the drain period only for drains. */
function syncOverrideFields() {
  const action = new FormData($("#override-form")).get("action");
  $("#override-period-field").hidden = action !== "drain";
  $("#override-submit").textContent = action === "drain" ? "Drain" : "Apply";
}

/** Clears a region's override. */
async function clearOverride(region) {
  try {
    await api("DELETE", `/v1/regions/${encodeURIComponent(region)}/override`);
    toast(`${region}: override cleared; the monitors decide again.`);
  } catch (err) {
    if (err.status !== 401) toast(`${region}: ${err.message}`, "error");
  }
  poll();
}

/** Opens the drill dialog, for `region` if given. */
function openDrill(region) {
  const form = $("#drill-form");
  const select = $("#drill-region");
  const duration = $("#drill-duration").value || "5m";
  form.reset();
  $("#drill-duration").value = duration;
  select.replaceChildren(
    ...(state.status?.regions ?? []).map((r) =>
      el("option", { value: r.name, text: `${r.name} — ${describe(r).label}`, disabled: r.drill != null || r.override ? true : null }),
    ),
  );
  const first = region ?? state.status?.regions.find((r) => r.drill == null && !r.override)?.name;
  if (first) select.value = first;
  $("#drill-error").hidden = true;
  $("#drill-dialog").showModal();
  $("#drill-reason").focus();
}

/** Aborts the drill running on a region. */
function abortRegionDrill(region) {
  const id = state.status?.regions.find((r) => r.name === region)?.drill;
  if (id !== null && id !== undefined) abortDrill(id);
}

/** Aborts a drill. */
async function abortDrill(id) {
  try {
    await api("POST", `/v1/drills/${id}/abort`);
    toast(`Drill #${id} aborted and rolled back.`);
  } catch (err) {
    if (err.status !== 401) toast(`Drill #${id}: ${err.message}`, "error");
  }
  state.drillsRevision = null;
  poll();
}

/** Clears a manual-failback hold. */
async function failBack(service) {
  try {
    await api("POST", `/v1/services/${encodeURIComponent(service)}/failback`);
    toast(`${service} may return to its primaries.`);
  } catch (err) {
    if (err.status !== 401) toast(`${service}: ${err.message}`, "error");
  }
  poll();
}

/** Shows an error inside a dialog. */
function formError(selector, message) {
  const node = $(selector);
  node.textContent = message;
  node.hidden = false;
}

/** Wires the override and drill dialogs. */
function setUpDialogs() {
  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  $("#override-form").addEventListener("change", syncOverrideFields);
  $("#override-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const region = form.dataset.region;
    const action = new FormData(form).get("action");
    const body = { action, reason: $("#override-reason").value.trim() };
    const period = $("#override-period").value.trim();
    const lasts = $("#override-for").value.trim();
    if (action === "drain" && period) body.drain_period = period;
    if (lasts) body.for = lasts;
    if (state.status) body.revision = state.status.revision;
    const submit = $("#override-submit");
    submit.disabled = true;
    try {
      await api("PUT", `/v1/regions/${encodeURIComponent(region)}/override`, body);
      $("#override-dialog").close();
      toast(`${region}: ${overrideName(action).toLowerCase()} set.`);
      poll();
    } catch (err) {
      if (err.status !== 401) formError("#override-error", err.message);
    } finally {
      submit.disabled = false;
    }
  });
  $("#drill-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const body = {
      region: $("#drill-region").value,
      mode: new FormData(form).get("mode"),
      duration: $("#drill-duration").value.trim(),
      reason: $("#drill-reason").value.trim(),
      force: $("#drill-force").checked,
    };
    if (state.status) body.revision = state.status.revision;
    const submit = $("#drill-submit");
    submit.disabled = true;
    try {
      const drill = await api("POST", "/v1/drills", body);
      $("#drill-dialog").close();
      state.selectedDrill = drill.id;
      state.pinnedDrill = false;
      state.drillsRevision = null;
      toast(`Drill #${drill.id} started on ${drill.region}.`);
      poll();
    } catch (err) {
      if (err.status === 401) return;
      formError("#drill-error", err.code === "capacity" ? `${err.message}. Tick the box above to run it anyway.` : err.message);
    } finally {
      submit.disabled = false;
    }
  });
  $("#start-drill").addEventListener("click", () => openDrill(null));
}

/** Wires the explain box. */
function setUpExplain() {
  $("#explain-name").addEventListener("input", (event) => {
    event.currentTarget.dataset.touched = "1";
  });
  $("#explain-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    params.set("name", $("#explain-name").value.trim());
    params.set("type", $("#explain-type").value);
    const client = $("#explain-client").value.trim();
    const ecs = $("#explain-ecs").value.trim();
    if (client) params.set("client", client);
    if (ecs) params.set("ecs", ecs);
    const result = $("#explain-result");
    try {
      const explanation = await api("GET", `/v1/explain?${params}`);
      result.replaceChildren(explainView(explanation));
    } catch (err) {
      if (err.status !== 401) result.replaceChildren(el("p", { class: "form-error", text: err.message }));
    }
  });
}

/** An explanation, as steps from the client to the records. */
function explainView(x) {
  const decision = x.decision;
  const verdict = el("div", { class: "verdict" }, el("span", { class: "mono", text: `${x.name} ${x.qtype}` }), el("span", { class: "arrow", text: "→" }));
  if (!decision) {
    verdict.append(el("span", { class: "badge", dataset: { category: "neutral" }, text: "zone data" }));
  } else if (decision.outcome === "regions") {
    for (const region of decision.regions) {
      const status = state.status?.regions.find((r) => r.name === region);
      verdict.append(el("span", { class: "badge", dataset: { category: status ? describe(status).category : "neutral" }, text: region }));
    }
    verdict.append(el("span", { class: "muted", text: `(${decision.reason.replaceAll("_", " ")})` }));
  } else {
    verdict.append(el("span", { class: "badge", dataset: { category: "down" }, text: decision.outcome }), el("span", { class: "muted", text: `(${decision.reason.replaceAll("_", " ")})` }));
  }
  const parts = [verdict];
  if (x.answer.length) parts.push(el("pre", { class: "records", text: x.answer.join("\n") }));
  const steps = el("ol", { class: "steps" });
  const step = (title, ...body) => steps.append(el("li", { class: "step" }, el("div", {}, el("div", { class: "step-title", text: title }), el("div", { class: "step-body" }, ...body))));
  const client = x.client;
  step(
    "Client",
    "Steered by the ",
    el("strong", { text: client.used === "ecs" ? `client subnet ${client.ecs}` : `resolver ${client.resolver}` }),
    client.used === "ecs" ? ` (asked through resolver ${client.resolver})` : "",
    client.ecs_ignored ? `. The subnet ${client.ecs} was not used: ${client.ecs_ignored}` : "",
    ".",
  );
  if (x.sources.length || x.map) {
    step(
      "Location",
      x.sources.length ? `${x.sources.join("; ")}. ` : "No geo source knows this address. ",
      x.map ? ["Map ", el("strong", { text: x.map.name }), ` orders ${x.map.regions.join(" → ") || "no regions"} for it (over /${x.map.scope}).`] : "",
    );
  }
  step("Policy", x.policy || "—");
  if (x.candidates.length) {
    const weighted = x.candidates.some((c) => c.weight != null);
    const tiered = x.candidates.some((c) => c.tier != null);
    const headings = ["Region", "State", "Traffic", "Records"];
    if (weighted || tiered) headings.push(weighted ? "Weight" : "Tier");
    const table = el(
      "table",
      { class: "table" },
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", { text: h })))),
      el(
        "tbody",
        {},
        x.candidates.map((c) =>
          el(
            "tr",
            { class: decision?.regions.includes(c.region) ? "chosen" : "" },
            el("td", { text: c.region }),
            el("td", {}, candidateState(c)),
            el("td", { text: percent(c.up ? c.factor : 0) }),
            el("td", { text: c.has_records ? "yes" : "none of this type" }),
            weighted || tiered
              ? el("td", { text: c.weight != null ? String(c.weight) : c.tier != null ? (c.tier === 0 ? "primary" : `standby ${c.tier}`) : "—" })
              : null,
          ),
        ),
      ),
    );
    step("Candidates", table);
  }
  if (decision) {
    const notes = [];
    if (decision.hashed) notes.push("the client's hash chose among regions");
    if (decision.degraded) notes.push("answers carry the degraded TTL");
    if (decision.held) notes.push("the service is held on standby (manual failback)");
    step(
      "Decision",
      el("strong", { text: decision.outcome === "regions" ? decision.regions.join(", ") || "no region" : decision.outcome }),
      ` because ${decision.reason.replaceAll("_", " ")}`,
      notes.length ? `; ${notes.join("; ")}` : "",
      x.ttl != null ? `. TTL ${x.ttl} s` : "",
      `, ECS scope /${x.scope}.`,
    );
  }
  parts.push(steps);
  return el("div", { class: "explain-answer" }, parts);
}

/** A candidate's state as a badge. */
function candidateState(c) {
  let category = "up";
  let label = "up";
  if (c.override) {
    category = c.override.action === "drain" || c.override.drill != null ? "degraded" : "override";
    label = c.override.drill != null ? "drill" : c.override.action.replace("_", " ");
  } else if (!c.up) {
    category = "down";
    label = "down";
  } else if (c.degraded || c.factor < 1) {
    category = "degraded";
    label = "degraded";
  }
  return el("span", { class: "badge", dataset: { category }, text: label });
}

// ---------------------------------------------------------------------------------------------
// Start

/** Keeps relative times fresh between polls and flags a stale page. */
function tick() {
  if (state.lastUpdate && Date.now() - state.lastUpdate > 3 * POLL_MS && $("#live").dataset.live === "ok") {
    $("#live-text").textContent = `Stale · ${duration(Date.now() - state.lastUpdate)} since the last update`;
  }
}

drawWorld();
setUpToken();
setUpDialogs();
setUpExplain();
updateIdentity();
$("#poll-interval").textContent = String(POLL_MS / 1000);
window.addEventListener("resize", () => {
  scaleLabels();
  refreshTooltip();
});
setInterval(tick, 1000);
poll();
