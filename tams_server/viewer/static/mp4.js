// Just enough ISO BMFF (MP4) to name the codecs of an init segment for Media Source Extensions:
// moov > trak > mdia > minf > stbl > stsd > sample entry > its configuration box
// (avcC: "avc1.PPCCLL", hvcC: "hvc1.P.C.Tn.Cs", esds: "mp4a.OO.A").

const CONTAINERS = new Set(["moov", "trak", "mdia", "minf", "stbl", "edts", "dinf", "mvex"]);
// Bytes between a sample entry's header and its child boxes (ISO 14496-12 §12.1.3, §12.2.3).
const VISUAL_ENTRY = 78;
const AUDIO_ENTRY = 28;

function fourcc(bytes, at) {
  return String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
}

/** The boxes of bytes[start:end) as [{type, start (of the payload), end}]. */
export function boxes(bytes, start = 0, end = bytes.length) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = [];
  let at = start;
  while (at + 8 <= end) {
    let size = view.getUint32(at);
    const type = fourcc(bytes, at + 4);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) break;
      size = Number(view.getBigUint64(at + 8));
      header = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < header || at + size > end) break; // truncated: stop rather than misread
    found.push({ type, start: at + header, end: at + size });
    at += size;
  }
  return found;
}

function hex2(value) {
  return value.toString(16).padStart(2, "0").toUpperCase();
}

function avcCodec(bytes, box) {
  const at = box.start; // AVCDecoderConfigurationRecord: version, profile, compatibility, level
  return `${hex2(bytes[at + 1])}${hex2(bytes[at + 2])}${hex2(bytes[at + 3])}`.toLowerCase();
}

function hevcCodec(bytes, box, entry) {
  // HEVCDecoderConfigurationRecord (ISO 14496-15 §8.3.3) -> RFC 6381 form (ISO 14496-15 Annex E).
  const at = box.start;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const space = bytes[at + 1] >> 6;
  const tier = (bytes[at + 1] >> 5) & 1;
  const profile = bytes[at + 1] & 0x1f;
  let compatibility = view.getUint32(at + 2);
  let reversed = 0; // the flags are written bit-reversed
  for (let i = 0; i < 32; i += 1) {
    reversed = (reversed << 1) | (compatibility & 1);
    compatibility >>>= 1;
  }
  const level = bytes[at + 12];
  const constraints = Array.from(bytes.subarray(at + 6, at + 12));
  while (constraints.length && constraints[constraints.length - 1] === 0) constraints.pop();
  const parts = [
    entry,
    `${["", "A", "B", "C"][space]}${profile}`,
    (reversed >>> 0).toString(16).toUpperCase(),
    `${tier ? "H" : "L"}${level}`,
    ...constraints.map((c) => c.toString(16).toUpperCase()),
  ];
  return parts.join(".");
}

function descriptor(bytes, at, end) {
  // An MPEG-4 descriptor: tag, then a size of 1-4 bytes of 7 bits each.
  const tag = bytes[at];
  let size = 0;
  let i = at + 1;
  for (let n = 0; n < 4 && i < end; n += 1, i += 1) {
    size = (size << 7) | (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      i += 1;
      break;
    }
  }
  return { tag, start: i, end: Math.min(i + size, end) };
}

function aacCodec(bytes, box) {
  let at = box.start + 4; // full box: version and flags
  let es = descriptor(bytes, at, box.end);
  if (es.tag !== 0x03) return "mp4a.40.2";
  at = es.start + 2; // ES_ID
  const flags = bytes[at];
  at += 1;
  if (flags & 0x80) at += 2; // dependsOn_ES_ID
  if (flags & 0x40) at += 1 + bytes[at]; // URL
  if (flags & 0x20) at += 2; // OCR_ES_Id
  const config = descriptor(bytes, at, es.end);
  if (config.tag !== 0x04) return "mp4a.40.2";
  const objectType = bytes[config.start];
  let codec = `mp4a.${hex2(objectType).toLowerCase()}`;
  const specific = descriptor(bytes, config.start + 13, config.end);
  if (objectType === 0x40 && specific.tag === 0x05 && specific.start < specific.end) {
    let audioObjectType = bytes[specific.start] >> 3;
    if (audioObjectType === 31) audioObjectType = 32 + (((bytes[specific.start] & 7) << 3) | (bytes[specific.start + 1] >> 5));
    codec += `.${audioObjectType}`;
  }
  return codec;
}

function sampleEntryCodec(bytes, entry) {
  if (["avc1", "avc3"].includes(entry.type)) {
    const config = boxes(bytes, entry.start + VISUAL_ENTRY, entry.end).find((b) => b.type === "avcC");
    return config ? `${entry.type}.${avcCodec(bytes, config)}` : null;
  }
  if (["hvc1", "hev1"].includes(entry.type)) {
    const config = boxes(bytes, entry.start + VISUAL_ENTRY, entry.end).find((b) => b.type === "hvcC");
    return config ? hevcCodec(bytes, config, entry.type) : null;
  }
  if (entry.type === "mp4a") {
    const config = boxes(bytes, entry.start + AUDIO_ENTRY, entry.end).find((b) => b.type === "esds");
    return config ? aacCodec(bytes, config) : "mp4a.40.2";
  }
  if (["vp09", "av01", "Opus", "fLaC"].includes(entry.type)) return null; // need more parsing than we do
  return null;
}

/**
 * The codecs of an init segment's tracks, in RFC 6381 form (["avc1.64001f", "mp4a.40.2"]);
 * null for a track whose codec this parser cannot name.
 */
export function initCodecs(bytes) {
  const codecs = [];
  const walk = (start, end) => {
    for (const box of boxes(bytes, start, end)) {
      if (CONTAINERS.has(box.type)) {
        walk(box.start, box.end);
      } else if (box.type === "stsd") {
        // full box (4) and entry count (4), then the sample entries
        for (const entry of boxes(bytes, box.start + 8, box.end)) codecs.push(sampleEntryCodec(bytes, entry));
      }
    }
  };
  walk(0, bytes.length);
  return codecs;
}

/** The MIME type for MediaSource.isTypeSupported and addSourceBuffer; null when a codec is unknown. */
export function mseType(bytes, container = "video/mp4") {
  const codecs = initCodecs(bytes);
  if (!codecs.length || codecs.includes(null)) return null;
  return `${container}; codecs="${codecs.join(",")}"`;
}
