// What is known of one flow's segments, a view at a time: the tile cache and the requests behind
// the timeline (timeline.js draws what this knows), asking the API for what is visible only.
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
//
// Times here are doubles, ns from an origin near the flow (its start): exact enough for drawing.
// A view is {start, end, level}: [start, end) ns from the origin, and the level of its zoom.

import { formatTimerange, parseTimerange } from "./timerange.js";

export const TILE_PX = 256;
export const TILE_LIMIT = 256;
export const PROBES = 8;
const CONCURRENT = 4;
const MAX_TILES = 600; // cached tiles kept (all levels)

/** The level whose tiles (2^level ns) are TILE_PX to 2 x TILE_PX wide at nsPerPx. */
export function levelFor(nsPerPx) {
  return Math.max(0, Math.ceil(Math.log2(TILE_PX * nsPerPx)));
}

/** A dense tile's probed remainder that holds segments (drawn hatched): [{start, end}]. */
export function denseSpans(tile) {
  if (!tile.dense) return [];
  return (tile.probes || []).filter((p) => p.first).map((p) => ({ start: Math.max(p.first.start, p.start), end: p.end }));
}

export class Tiles {
  /**
   * listSegments(params, signal): the flow's segments for the query params (resolves {segments,
   * more}); onChange(): called whenever a request ends (what is known or loading has changed).
   */
  constructor(listSegments, onChange) {
    this.listSegments = listSegments;
    this.onChange = onChange;
    this.cache = new Map(); // "level:index" -> tile, least recently used first
    this.queue = [];
    this.running = new Set();
    this.reset(null, null, null);
  }

  /** Start over with a flow whose segments span [start, end) (BigInt ns; null when it has none). */
  reset(flowId, start, end) {
    this.cancel();
    this.flowId = flowId;
    this.cache.clear();
    this.stats = { requests: 0, segments: 0 };
    this.origin = start ?? 0n;
    this.extent = start === null || end === null ? null : { start: 0, end: Number(end - this.origin) };
  }

  /** A BigInt timerange string of [a, b) ns from the origin. */
  range(a, b) {
    return formatTimerange(this.origin + BigInt(Math.floor(a)), this.origin + BigInt(Math.ceil(b)));
  }

  // ---------------------------------------------------------------- the cache

  /** The tiles of the view's level that it shows (and that the flow's extent reaches). */
  visible({ start, end, level }) {
    if (!this.extent) return [];
    const span = 2 ** level;
    const from = Math.floor(Math.max(start, this.extent.start) / span);
    const to = Math.ceil(Math.min(end, this.extent.end) / span);
    const tiles = [];
    for (let index = from; index < to; index += 1) tiles.push(this.tile(level, index));
    return tiles;
  }

  tile(level, index) {
    const key = `${level}:${index}`;
    let tile = this.cache.get(key);
    if (!tile) {
      const span = 2 ** level;
      tile = { key, level, index, start: index * span, end: (index + 1) * span, state: "new", segments: [] };
      this.cache.set(key, tile);
      if (this.cache.size > MAX_TILES) this.evict(level);
    } else {
      this.cache.delete(key); // most recently used last
      this.cache.set(key, tile);
    }
    return tile;
  }

  /** Drop the least recently used tiles, but not those of the level in view still loading. */
  evict(level) {
    for (const [key, tile] of this.cache) {
      if (this.cache.size <= MAX_TILES * 0.8) break;
      if (tile.level !== level || tile.state !== "loading") this.cache.delete(key);
    }
  }

  /** Loaded tiles of other levels that overlap the view: they stand in while its level loads. */
  standIns({ start, end, level }) {
    return [...this.cache.values()].filter((t) => t.level !== level && t.state === "done" && t.end > start && t.start < end);
  }

  // ---------------------------------------------------------------- fetching

  cancel() {
    this.queue = [];
    for (const job of this.running) job.controller.abort();
    this.running.clear();
  }

  /** Queue the view's tiles that are not loaded; drop queued work the view no longer needs. */
  load(view) {
    const wanted = this.visible(view);
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
    const middle = (view.start + view.end) / 2;
    this.queue.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "tile" ? -1 : 1) || Math.abs(a.tile.start - middle) - Math.abs(b.tile.start - middle));
    this.pump();
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
          this.onChange();
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

  // ---------------------------------------------------------------- what is known in a view

  /**
   * What the view's tiles know of it: segments (timerange -> segment, exactly known), covered
   * spans (segments and dense spans), holes (once complete), count (exact segments plus the
   * estimate of the dense spans), and whether it is complete (all loaded) and exact (no dense tile).
   */
  contents(view) {
    const { start, end } = view;
    const segments = new Map();
    const covered = [];
    let estimate = 0;
    let complete = true;
    let exact = true;
    for (const tile of this.visible(view)) {
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
      for (const span of denseSpans(tile)) {
        const from = Math.max(span.start, start);
        const to = Math.min(span.end, end);
        if (to > from) {
          covered.push(span);
          estimate += (to - from) * density;
        }
      }
    }
    for (const segment of segments.values()) covered.push(segment);
    estimate = Math.round(estimate);
    const holes = complete ? this.gaps(view, covered) : [];
    return { segments, covered, holes, estimate, count: segments.size + estimate, complete, exact };
  }

  /** Holes in the view inside the flow's extent, given what covers it: [{start, end}]. */
  gaps({ start, end }, covered) {
    if (!this.extent) return [];
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

  /** The segment known at t (or within slack of it), "dense" when t is in a dense span, else null. */
  at(view, t, slack) {
    let best = null;
    for (const tile of this.visible(view)) {
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
}
