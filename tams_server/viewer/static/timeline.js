// A zoomable, pannable timeline of one flow's segments on a canvas: the view. What is known of the
// segments (tiles of the time axis, fetched for what is visible only, with bounded requests) lives
// in tiles.js; this holds the range shown, zoom and pan, painting, hit testing, selection, and the
// keyboard and mouse.

import { formatDuration } from "./timerange.js";
import { Tiles, denseSpans, levelFor } from "./tiles.js";

const SETTLE_MS = 120; // fetch a new level once the zoom has settled
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
   * signal): the flow's segments for the query params (resolves {segments, more}); onSelect(segment);
   * onView(timerange): the view has settled on this range.
   */
  constructor(canvas, summary, { listSegments, onSelect, onView }) {
    this.canvas = canvas;
    this.summary = summary;
    this.onSelect = onSelect;
    this.onView = onView;
    this.tiles = new Tiles(listSegments, () => this.draw());
    this.selected = null;
    this.playhead = null;
    this.settleTimer = null;
    this.hatch = null;
    this.bind();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  get flowId() {
    return this.tiles.flowId;
  }

  /** BigInt ns that view times (doubles) count from: the flow's start. */
  get origin() {
    return this.tiles.origin;
  }

  /** The flow's segments' span, {start, end} ns from the origin, or null when it has none. */
  get extent() {
    return this.tiles.extent;
  }

  // ---------------------------------------------------------------- the flow and the view

  /** Show a flow whose segments span [start, end) (BigInt ns; null when it has none). */
  setFlow(flowId, start, end) {
    clearTimeout(this.settleTimer);
    this.tiles.reset(flowId, start, end);
    this.selected = null;
    this.playhead = null;
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
    return this.tiles.range(start, end);
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

  /** [start, end) ns from the origin, and the tile level of the zoom (what tiles.js reads). */
  view() {
    return { start: this.viewStart, end: this.viewStart + this.width() * this.nsPerPx, level: levelFor(this.nsPerPx) };
  }

  changed(now) {
    this.draw();
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.load(), now ? 0 : SETTLE_MS);
  }

  load() {
    if (this.flowId && this.onView) this.onView(this.viewRange());
    this.tiles.load(this.view());
    this.draw();
  }

  describe(contents) {
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
    el.dataset.state = "done";
    el.dataset.segments = String(contents.count);
    el.dataset.gaps = String(contents.holes.length);
    el.dataset.exact = String(contents.exact);
    const gaps = plural(contents.holes.length, "gap");
    const { start, end } = this.view();
    const span = formatDuration(BigInt(Math.round(end - start)));
    if (contents.exact) return `${plural(contents.count, "segment")}, ${gaps} in view (${span}).`;
    const about = Math.round(contents.count / 10) * 10;
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
    const view = this.view();
    const tiles = this.tiles.visible(view);
    if (tiles.some((t) => t.state !== "done")) {
      ctx.globalAlpha = 0.45;
      this.paintTiles(ctx, this.tiles.standIns(view));
      ctx.globalAlpha = 1;
    }
    for (const tile of tiles) {
      if (tile.state === "done") continue;
      ctx.fillStyle = COLORS.loading;
      const a = this.x(tile.start);
      ctx.fillRect(a, LANE_TOP + LANE_HEIGHT / 2 - 2, this.x(tile.end) - a, 4);
    }
    const contents = this.tiles.contents(view);
    for (const hole of contents.holes) this.paintGap(ctx, hole);
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
    canvas.dataset.requests = String(this.tiles.stats.requests);
    canvas.dataset.view = this.flowId ? this.viewRange() : "";
    const text = this.describe(contents);
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
    for (const span of denseSpans(tile)) {
      const a = this.x(span.start);
      ctx.fillRect(a, LANE_TOP, this.x(span.end) - a, LANE_HEIGHT);
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
    const slack = 2 * this.nsPerPx; // narrow segments stay clickable
    return this.tiles.at(this.view(), this.viewStart + x * this.nsPerPx, slack);
  }

  select(segment) {
    this.selected = segment;
    this.draw();
    if (segment) this.onSelect(segment);
  }

  /** The known segment after (step 1) or before (step -1) the selected one, in view order. */
  step(direction) {
    const { segments } = this.tiles.contents(this.view());
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
