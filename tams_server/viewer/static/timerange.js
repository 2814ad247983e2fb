// TAMS timestamps ("-?sec:nsec", the sign applies to the whole value) and timeranges, exactly:
// nanoseconds as BigInt (a TAI time in ns is ~1.8e18, beyond a double's 2^53). The timeline
// draws with doubles relative to an origin near the flow, where they are exact enough.

export const NS_PER_SEC = 1_000_000_000n;

const TS = "(-?(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]{0,8}))";
const RANGE = new RegExp(`^([\\[(])?${TS}?(?:(_)${TS}?)?([\\])])?$`);

/** BigInt nanoseconds of a TAMS timestamp string. */
export function parseTimestamp(text) {
  const match = /^(-)?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})$/.exec(text);
  if (!match) throw new Error(`not a TAMS timestamp: ${text}`);
  const ns = BigInt(match[2]) * NS_PER_SEC + BigInt(match[3]);
  return match[1] ? -ns : ns;
}

/** The TAMS form of BigInt nanoseconds. */
export function formatTimestamp(ns) {
  const negative = ns < 0n;
  const magnitude = negative ? -ns : ns;
  return `${negative ? "-" : ""}${magnitude / NS_PER_SEC}:${magnitude % NS_PER_SEC}`;
}

/**
 * A timerange string as {start, end, includeStart, includeEnd, empty}; start/end are BigInt ns or
 * null when unbounded. A missing marker next to a timestamp means inclusive (as the server reads it).
 */
export function parseTimerange(text) {
  if (text === "()") return { start: null, end: null, includeStart: false, includeEnd: false, empty: true };
  const match = RANGE.exec(text);
  if (!match) throw new Error(`not a TAMS timerange: ${text}`);
  const [, startMark, startText, separator, endText, endMark] = match;
  const start = startText === undefined ? null : parseTimestamp(startText);
  // "[ts]" (no separator) is an instant.
  const end = separator ? (endText === undefined ? null : parseTimestamp(endText)) : start;
  const includeStart = startMark !== "(";
  const includeEnd = endMark !== ")";
  let empty = false;
  if (start !== null && end !== null) empty = end < start || (end === start && !(includeStart && includeEnd));
  return { start, end, includeStart, includeEnd, empty };
}

/** "[start_end)" for BigInt bounds (either may be null: unbounded). */
export function formatTimerange(start, end) {
  const left = start === null ? "" : `[${formatTimestamp(start)}`;
  const right = end === null ? "" : `${formatTimestamp(end)})`;
  return `${left}_${right}`;
}

/** Seconds (a double) of BigInt nanoseconds: for durations and for positions near an origin. */
export function seconds(ns) {
  return Number(ns) / 1e9;
}

/** A short human duration: "40 ms", "2.5 s", "1 h 02 min". */
export function formatDuration(ns) {
  const s = Math.abs(Number(ns)) / 1e9;
  const sign = ns < 0 ? "-" : "";
  if (s === 0) return "0 s";
  if (s < 1e-3) return `${sign}${(s * 1e6).toPrecision(3)} µs`;
  if (s < 1) return `${sign}${(s * 1e3).toPrecision(3)} ms`;
  if (s < 60) return `${sign}${Number(s.toPrecision(4))} s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  if (s < 86400 * 2) return `${sign}${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  return `${sign}${(s / 86400).toFixed(1)} days`;
}
