// A zoomable, pannable timeline of one flow's segments on a canvas, that asks the API for what is
// visible only.
//
// The time axis is cut into tiles of 2^k ns, k chosen so a tile is 256-512 px wide at the current
// zoom (a level). Each visible tile costs one request, GET segments?timerange=<tile>&limit=256
// without get_urls; tiles are cached per level, so panning fetches only the tiles that come into
// view and zooming fetches one new level (after the wheel stops). A tile holding more than 256
// segments (the answer has a next page) is "dense": its segments are sub-pixel at this zoom, so
// instead of paging through them we draw the first 256 exactly and probe the rest of the tile
// with 8 requests of limit=1 (the first segment in each eighth): an empty eighth is a hole, one
// with data is drawn hatched ("zoom in for each segment"), and the segment count is estimated
// from the density of the exact part. A view therefore costs at most (visible tiles) x 9
// requests and (visible tiles) x 264 segments, whatever the flow's size; zooming in until the
// tiles are not dense shows every segment and every hole exactly.

import { formatDuration, formatTimerange, parseTimerange } from "./timerange.js";

export const TILE_PX = 256;
export const TILE_LIMIT = 256;
export const PROBES = 8;
const CONCURRENT = 4;
const SETTLE_MS = 120; // fetch a new level once the zoom has settled
const MAX_TILES = 600; // cached tiles kept (all levels)
const HEIGHT = 150;
const AXIS = 24;
const LANE_TOP = 40;
const LANE_HEIGHT = 64;

const COLORS = {
  background: "#ffffff",
  extent: "#eef2f7",
  axis: "#5b6675",
  grid: "#e3e8ef",
  segmentA: "#2f6fdf",
  segmentB: "#5790f0",
  gap: "#d6452f",
  selected: "#f59e0b",
  playhead: "#16a34a",
  loading: "#c9d2de",
  text: "#1f2933",
};

function plural(count, word) {
  return `${count.toLocaleString("en")} ${word}${count === 1 ? "" : "s"}`;
}

export class Timeline {
  /**
   * canvas: the <canvas>; summary: an element whose text says what is in view; listSegments(params,
   * signal): the flow's segments for the query params (resolves {segments, more}); onSelect(segment).
   */
  constructor(canvas, summary, { listSegments, onSelect, onView }) {
    this.canvas = canvas;
    this.summary = summary;
    this.listSegments = listSegments;
    this.onSelect = onSelect;
    this.onView = onView;
    this.flowId = null;
    this.tiles = new Map(); // "level:index" -> tile
    this.queue = [];
    this.running = new Set();
    this.stats = { requests: 0, segments: 0 };
    this.selected = null;
    this.playhead = null;
    this.settleTimer = null;
    this.hatch = null;
    this.bind();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  // ---------------------------------------------------------------- the flow and the view

  /** Show a flow whose segments span [start, end) (BigInt ns; null when it has none). */
  setFlow(flowId, start, end) {
    this.cancel();
    this.flowId = flowId;
    this.tiles.clear();
    this.selected = null;
    this.playhead = null;
    this.stats = { requests: 0, segments: 0 };
    this.origin = start ?? 0n;
    this.extent = start === null || end === null ? null : { start: 0, end: Number(end - this.origin) };
    this.fit();
  }

  width() {
    return Math.max(1, this.canvas.clientWidth);
  }

  fit() {
    const span = this.extent ? Math.max(this.extent.end - this.extent.start, 1) : 10e9;
    const pad = span * 0.03;
    this.nsPerPx = (span + 2 * pad) / this.width();
    this.viewStart = (this.extent ? this.extent.start : 0) - pad;
    this.changed(true);
  }

  /** Show [start, end) (BigInt ns). */
  show(start, end) {
    this.nsPerPx = Math.max(Number(end - start), 1) / this.width();
    this.viewStart = Number(start - this.origin);
    this.changed(true);
  }

  /** The view as a timerange string. */
  viewRange() {
    const { start, end } = this.view();
    return this.range(start, end);
  }

  zoom(factor, atPx = this.width() / 2) {
    const at = this.viewStart + atPx * this.nsPerPx;
    const span = this.extent ? Math.max(this.extent.end - this.extent.start, 1e9) : 10e9;
    const nsPerPx = Math.min(Math.max(this.nsPerPx * factor, 1), (span * 20) / this.width());
    this.viewStart = at - atPx * nsPerPx;
    this.nsPerPx = nsPerPx;
    this.changed(false);
  }

  pan(px) {
    this.viewStart += px * this.nsPerPx;
    this.changed(false);
  }

  /** Centre the view on t (ns from the origin) at the current zoom. */
  centre(t) {
    this.viewStart = t - (this.width() / 2) * this.nsPerPx;
    this.changed(false);
  }

  view() {
    return { start: this.viewStart, end: this.viewStart + this.width() * this.nsPerPx };
  }

  level() {
    return Math.max(0, Math.ceil(Math.log2(TILE_PX * this.nsPerPx)));
  }

  /** The tiles of the current level that the view shows (and that the flow's extent reaches). */
  visibleTiles() {
    if (!this.extent) return [];
    const level = this.level();
    const span = 2 ** level;
    const { start, end } = this.view();
    const from = Math.floor(Math.max(start, this.extent.start) / span);
    const to = Math.ceil(Math.min(end, this.extent.end) / span);
    const tiles = [];
    for (let index = from; index < to; index += 1) tiles.push(this.tile(level, index));
    return tiles;
  }

  tile(level, index) {
    const key = `${level}:${index}`;
    let tile = this.tiles.get(key);
    if (!tile) {
      const span = 2 ** level;
      tile = { key, level, index, start: index * span, end: (index + 1) * span, state: "new", segments: [] };
      this.tiles.set(key, tile);
      if (this.tiles.size > MAX_TILES) this.evict();
    } else {
      this.tiles.delete(key); // most recently used last
      this.tiles.set(key, tile);
    }
    return tile;
  }

  evict() {
    const level = this.level();
    for (const [key, tile] of this.tiles) {
      if (this.tiles.size <= MAX_TILES * 0.8) break;
      if (tile.level !== level || tile.state !== "loading") this.tiles.delete(key);
    }
  }

  /** A BigInt timerange string of [a, b) ns from the origin. */
  range(a, b) {
    return formatTimerange(this.origin + BigInt(Math.floor(a)), this.origin + BigInt(Math.ceil(b)));
  }

  // ---------------------------------------------------------------- fetching

  changed(now) {
    this.draw();
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.load(), now ? 0 : SETTLE_MS);
  }

  cancel() {
    clearTimeout(this.settleTimer);
    this.queue = [];
    for (const job of this.running) job.controller.abort();
    this.running.clear();
  }

  /** Queue the visible tiles that are not loaded; drop queued work the view no longer needs. */
  load() {
    if (this.flowId && this.onView) this.onView(this.viewRange());
    const wanted = this.visibleTiles();
    const keys = new Set(wanted.map((t) => t.key));
    // Work for tiles out of view is dropped; such a tile is fetched afresh if it comes back.
    const forget = (tile) => {
      tile.state = "new";
      tile.segments = [];
      tile.probes = null;
      tile.dense = false;
    };
    this.queue = this.queue.filter((job) => keys.has(job.tile.key) || (forget(job.tile), false));
    for (const job of this.running) {
      if (!keys.has(job.tile.key)) {
        job.controller.abort();
        this.running.delete(job);
        forget(job.tile);
      }
    }
    for (const tile of wanted) {
      if (tile.state === "new" || tile.state === "error") {
        tile.state = "loading";
        this.queue.push({ tile, kind: "tile" });
      }
    }
    // Nearest the middle first.
    const middle = (this.view().start + this.view().end) / 2;
    this.queue.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "tile" ? -1 : 1) || Math.abs(a.tile.start - middle) - Math.abs(b.tile.start - middle));
    this.pump();
    this.draw();
  }

  pump() {
    while (this.running.size < CONCURRENT && this.queue.length) {
      const job = this.queue.shift();
      job.controller = new AbortController();
      this.running.add(job);
      this.run(job)
        .catch((error) => {
          if (error.name !== "AbortError") {
            job.tile.state = "error";
            job.tile.error = error.message;
          }
        })
        .finally(() => {
          this.running.delete(job);
          this.pump();
          this.draw();
        });
    }
  }

  async request(params, signal) {
    this.stats.requests += 1;
    const answer = await this.listSegments({ ...params, accept_get_urls: "" }, signal);
    this.stats.segments += answer.segments.length;
    return answer;
  }

  parse(raw) {
    const range = parseTimerange(raw.timerange);
    const start = range.start === null ? -Infinity : Number(range.start - this.origin);
    const end = range.end === null ? Infinity : Number(range.end - this.origin);
    // Alternating colours that follow the segment, not its place in the view (no flicker while
    // panning): the parity of start / duration, which alternates along evenly cut flows.
    const length = range.start !== null && range.end !== null ? range.end - range.start : 0n;
    const parity = length > 0n ? Number((range.start / length) & 1n) : 0;
    return { timerange: raw.timerange, object_id: raw.object_id, start, end, parity };
  }

  async run(job) {
    const { tile, signal } = { tile: job.tile, signal: job.controller.signal };
    const flowId = this.flowId;
    if (job.kind === "tile") {
      const answer = await this.request({ timerange: this.range(tile.start, tile.end), limit: TILE_LIMIT }, signal);
      if (flowId !== this.flowId) return;
      tile.segments = answer.segments.map((s) => this.parse(s));
      tile.dense = answer.more && tile.segments.length > 0;
      if (!tile.dense) {
        tile.state = "done";
        return;
      }
      // The exact part ends where the last segment ends; probe the rest in eighths.
      tile.knownUntil = Math.min(tile.segments[tile.segments.length - 1].end, tile.end);
      const step = (tile.end - tile.knownUntil) / PROBES;
      tile.probes = [];
      for (let i = 0; i < PROBES; i += 1) {
        const probe = { start: tile.knownUntil + i * step, end: tile.knownUntil + (i + 1) * step, state: "loading" };
        tile.probes.push(probe);
        if (step >= 1) this.queue.push({ tile, kind: "probe", probe });
        else probe.state = "done";
      }
      tile.state = tile.probes.some((p) => p.state === "loading") ? "probing" : "done";
      return;
    }
    const { probe } = job;
    const answer = await this.request({ timerange: this.range(probe.start, probe.end), limit: 1 }, signal);
    if (flowId !== this.flowId) return;
    probe.first = answer.segments.length ? this.parse(answer.segments[0]) : null;
    probe.state = "done";
    if (tile.probes.every((p) => p.state === "done")) tile.state = "done";
  }

  // ---------------------------------------------------------------- what is in view

  /** Segments, covered spans and estimated counts of the view, from the visible tiles. */
  contents() {
    const { start, end } = this.view();
    const segments = new Map();
    const covered = [];
    let estimate = 0;
    let complete = true;
    let exact = true;
    for (const tile of this.visibleTiles()) {
      if (tile.state !== "done") {
        complete = false;
        continue;
      }
      for (const segment of tile.segments) {
        if (segment.end > start && segment.start < end) segments.set(segment.timerange, segment);
      }
      if (!tile.dense) continue;
      exact = false;
      const first = tile.segments[0].start;
      const density = tile.segments.length / Math.max(tile.knownUntil - Math.max(first, tile.start), 1);
      for (const probe of tile.probes) {
        if (!probe.first) continue;
        const from = Math.max(probe.first.start, probe.start, start);
        const to = Math.min(probe.end, end);
        if (to > from) {
          covered.push({ start: Math.max(probe.first.start, probe.start), end: probe.end });
          estimate += (to - from) * density;
        }
      }
    }
    for (const segment of segments.values()) covered.push(segment);
    return { segments, covered, estimate: Math.round(estimate), complete, exact };
  }

  /** Holes in the view inside the flow's extent: [{start, end}]. */
  gaps(covered) {
    if (!this.extent) return [];
    const { start, end } = this.view();
    const from = Math.max(start, this.extent.start);
    const to = Math.min(end, this.extent.end);
    const sorted = covered.slice().sort((a, b) => a.start - b.start);
    const holes = [];
    let reached = from;
    for (const span of sorted) {
      if (span.start > reached && span.start < to) holes.push({ start: reached, end: span.start });
      reached = Math.max(reached, span.end);
      if (reached >= to) break;
    }
    if (reached < to) holes.push({ start: reached, end: to });
    return holes;
  }

  describe(contents, holes) {
    const el = this.canvas;
    if (!this.flowId) return "";
    if (!this.extent) {
      el.dataset.segments = "0";
      el.dataset.gaps = "0";
      el.dataset.state = "done";
      return "This flow has no segments.";
    }
    if (!contents.complete) {
      el.dataset.state = "loading";
      return "Loading the segments in view…";
    }
    const count = contents.segments.size;
    el.dataset.state = "done";
    el.dataset.segments = String(contents.exact ? count : count + contents.estimate);
    el.dataset.gaps = String(holes.length);
    el.dataset.exact = String(contents.exact);
    const gaps = plural(holes.length, "gap");
    const { start, end } = this.view();
    const span = formatDuration(BigInt(Math.round(end - start)));
    if (contents.exact) return `${plural(count, "segment")}, ${gaps} in view (${span}).`;
    const about = Math.round((count + contents.estimate) / 10) * 10;
    return `About ${plural(about, "segment")}, ${gaps} in view (${span}); hatched areas are dense: zoom in to see each segment.`;
  }

  // ---------------------------------------------------------------- drawing

  x(t) {
    return (t - this.viewStart) / this.nsPerPx;
  }

  draw() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.paint();
    });
  }

  paint() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = this.width();
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(HEIGHT * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(HEIGHT * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = COLORS.background;
    ctx.fillRect(0, 0, width, HEIGHT);
    if (!this.flowId) return;
    this.paintAxis(ctx, width);
    if (this.extent) {
      const a = Math.max(this.x(this.extent.start), 0);
      const b = Math.min(this.x(this.extent.end), width);
      ctx.fillStyle = COLORS.extent;
      ctx.fillRect(a, LANE_TOP - 6, b - a, LANE_HEIGHT + 12);
    }
    // Tiles of other levels still cached stand in while this level loads.
    const tiles = this.visibleTiles();
    if (tiles.some((t) => t.state !== "done")) {
      const { start, end } = this.view();
      const stand = [...this.tiles.values()].filter(
        (t) => t.level !== this.level() && t.state === "done" && t.end > start && t.start < end,
      );
      ctx.globalAlpha = 0.45;
      this.paintTiles(ctx, stand);
      ctx.globalAlpha = 1;
    }
    for (const tile of tiles) {
      if (tile.state === "done") continue;
      ctx.fillStyle = COLORS.loading;
      const a = this.x(tile.start);
      ctx.fillRect(a, LANE_TOP + LANE_HEIGHT / 2 - 2, this.x(tile.end) - a, 4);
    }
    const contents = this.contents();
    const holes = contents.complete ? this.gaps(contents.covered) : [];
    for (const hole of holes) this.paintGap(ctx, hole);
    this.paintTiles(ctx, tiles.filter((t) => t.state === "done" || t.state === "probing"));
    if (this.selected) {
      const a = this.x(this.selected.start);
      const b = this.x(this.selected.end);
      ctx.strokeStyle = COLORS.selected;
      ctx.lineWidth = 3;
      ctx.strokeRect(a, LANE_TOP - 3, Math.max(b - a, 2), LANE_HEIGHT + 6);
    }
    if (this.playhead !== null) {
      const p = this.x(this.playhead);
      ctx.fillStyle = COLORS.playhead;
      ctx.fillRect(p - 1, AXIS, 2, HEIGHT - AXIS);
    }
    canvas.dataset.requests = String(this.stats.requests);
    canvas.dataset.view = this.flowId ? this.viewRange() : "";
    const text = this.describe(contents, holes);
    if (this.summary.textContent !== text) this.summary.textContent = text;
  }

  paintAxis(ctx, width) {
    const { start, end } = this.view();
    // A step of 1, 2 or 5 x 10^n ns with at least 90 px between labels.
    const minimum = 90 * this.nsPerPx;
    let step = 10 ** Math.floor(Math.log10(minimum));
    for (const m of [1, 2, 5, 10]) {
      if (step * m >= minimum) {
        step *= m;
        break;
      }
    }
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let t = Math.ceil(start / step) * step; t < end; t += step) {
      const x = Math.round(this.x(t)) + 0.5;
      ctx.fillStyle = COLORS.grid;
      ctx.fillRect(x, AXIS, 1, HEIGHT - AXIS);
      ctx.fillStyle = COLORS.axis;
      ctx.fillText(formatDuration(BigInt(Math.round(t))), x + 4, AXIS / 2);
    }
    ctx.fillStyle = COLORS.grid;
    ctx.fillRect(0, AXIS, width, 1);
  }

  paintGap(ctx, hole) {
    const a = this.x(hole.start);
    const b = this.x(hole.end);
    ctx.fillStyle = "rgba(214, 69, 47, 0.16)";
    ctx.fillRect(a, LANE_TOP, Math.max(b - a, 2), LANE_HEIGHT);
    ctx.fillStyle = COLORS.gap;
    ctx.fillRect(a, LANE_TOP + LANE_HEIGHT + 8, Math.max(b - a, 2), 4);
    if (b - a > 30) {
      ctx.fillStyle = COLORS.gap;
      ctx.textAlign = "center";
      ctx.fillText("gap", (a + b) / 2, LANE_TOP + LANE_HEIGHT + 22);
      ctx.textAlign = "start";
    }
  }

  /** Segments sorted by start; neighbouring sub-pixel ones are drawn as one run. */
  paintSegments(ctx, segments) {
    const width = this.width();
    let run = null;
    const flush = () => {
      if (run) ctx.fillRect(run.a, LANE_TOP, Math.max(run.b - run.a, 1), LANE_HEIGHT);
      run = null;
    };
    ctx.fillStyle = COLORS.segmentA;
    for (const segment of segments) {
      const a = Math.max(this.x(segment.start), -1);
      const b = Math.min(this.x(segment.end), width + 1);
      if (b < 0 || a > width) continue;
      if (b - a >= 3) {
        flush();
        // The colour follows the segment (not its place in the view): stable while panning.
        ctx.fillStyle = segment.parity ? COLORS.segmentB : COLORS.segmentA;
        ctx.fillRect(a, LANE_TOP, b - a - 1, LANE_HEIGHT);
        ctx.fillStyle = COLORS.segmentA;
      } else if (run && a - run.b < 1) {
        run.b = Math.max(run.b, b);
      } else {
        flush();
        run = { a, b };
      }
    }
    flush();
  }

  /** A dense tile's probed remainder, hatched. */
  paintDense(ctx, tile) {
    if (!tile.dense) return;
    ctx.fillStyle = this.pattern(ctx);
    for (const probe of tile.probes || []) {
      if (!probe.first) continue;
      const a = this.x(Math.max(probe.first.start, probe.start));
      const b = this.x(probe.end);
      ctx.fillRect(a, LANE_TOP, b - a, LANE_HEIGHT);
    }
  }

  paintTiles(ctx, tiles) {
    const unique = new Map();
    for (const tile of tiles) for (const segment of tile.segments) unique.set(segment.timerange, segment);
    this.paintSegments(ctx, [...unique.values()].sort((a, b) => a.start - b.start));
    for (const tile of tiles) this.paintDense(ctx, tile);
  }

  pattern(ctx) {
    if (!this.hatch) {
      const tile = document.createElement("canvas");
      tile.width = 8;
      tile.height = 8;
      const t = tile.getContext("2d");
      t.fillStyle = "#9dbcf5";
      t.fillRect(0, 0, 8, 8);
      t.strokeStyle = COLORS.segmentA;
      t.lineWidth = 2;
      t.beginPath();
      t.moveTo(-2, 10);
      t.lineTo(10, -2);
      t.stroke();
      this.hatch = ctx.createPattern(tile, "repeat");
    }
    return this.hatch;
  }

  // ---------------------------------------------------------------- interaction

  /** The segment (exactly known) at x px, or "dense" when x is in a hatched area, else null. */
  hit(x) {
    const t = this.viewStart + x * this.nsPerPx;
    const slack = 2 * this.nsPerPx; // narrow segments stay clickable
    let best = null;
    for (const tile of this.visibleTiles()) {
      for (const segment of tile.segments) {
        if (segment.start - slack <= t && t < segment.end + slack) {
          const inside = segment.start <= t && t < segment.end;
          if (inside) return segment;
          best = best || segment;
        }
      }
      for (const probe of tile.probes || []) if (probe.first && probe.first.start <= t && t < probe.end) return "dense";
    }
    return best;
  }

  select(segment) {
    this.selected = segment;
    this.draw();
    if (segment) this.onSelect(segment);
  }

  /** The known segment after (step 1) or before (step -1) the selected one, in view order. */
  step(direction) {
    const { segments } = this.contents();
    const list = [...segments.values()].sort((a, b) => a.start - b.start);
    if (!list.length) return;
    let index = this.selected ? list.findIndex((s) => s.timerange === this.selected.timerange) : -1;
    index = index < 0 ? (direction > 0 ? 0 : list.length - 1) : Math.min(Math.max(index + direction, 0), list.length - 1);
    this.select(list[index]);
    const segment = list[index];
    const { start, end } = this.view();
    if (segment.start < start || segment.end > end) this.centre((segment.start + segment.end) / 2);
  }

  setPlayhead(t) {
    this.playhead = t;
    this.draw();
  }

  bind() {
    const canvas = this.canvas;
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const rect = canvas.getBoundingClientRect();
        if (event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY)) this.pan(event.deltaX || event.deltaY);
        else this.zoom(Math.exp(event.deltaY * 0.0015), event.clientX - rect.left);
      },
      { passive: false },
    );
    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      drag = { x: event.clientX, last: event.clientX, moved: false };
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      if (Math.abs(event.clientX - drag.x) > 4) drag.moved = true;
      if (drag.moved) {
        this.pan(drag.last - event.clientX);
        drag.last = event.clientX;
      }
    });
    canvas.addEventListener("pointerup", (event) => {
      const wasDrag = drag && drag.moved;
      drag = null;
      if (wasDrag) return;
      const rect = canvas.getBoundingClientRect();
      const x = event.clientX - rect.left;
      const found = this.hit(x);
      if (found === "dense") this.zoom(1 / 8, x);
      else this.select(found);
    });
    canvas.addEventListener("keydown", (event) => {
      const keys = {
        "+": () => this.zoom(0.5),
        "=": () => this.zoom(0.5),
        "-": () => this.zoom(2),
        ArrowLeft: () => this.pan(-this.width() / 10),
        ArrowRight: () => this.pan(this.width() / 10),
        Home: () => this.fit(),
        0: () => this.fit(),
        "[": () => this.step(-1),
        "]": () => this.step(1),
      };
      const action = keys[event.key];
      if (action) {
        event.preventDefault();
        action();
      }
    });
  }
}
