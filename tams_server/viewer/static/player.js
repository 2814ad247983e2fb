// Playback of a fragmented-MP4 flow in the page through Media Source Extensions: the segments'
// init object and media objects are fetched through their get_urls (this server's signed /media/
// URLs) and appended to one SourceBuffer. Each segment is placed on the video's timeline by its
// TAMS ts_offset (object time + ts_offset = flow time), relative to the first segment played, so
// video time 0 is that segment's start; holes between segments are jumped over.

import { getBytes, getJson } from "./api.js";
import { mseType } from "./mp4.js";
import { formatTimerange, parseTimerange, parseTimestamp, seconds } from "./timerange.js";

const AHEAD_S = 12; // buffer this far ahead of the playhead
const BEHIND_S = 30; // and drop what is further behind
const PAGE = 10;

/** The URL of a get_urls list the page may fetch (this origin: the CSP's connect-src). */
export function pickUrl(getUrls) {
  const urls = (getUrls || []).map((u) => u.url).filter(Boolean);
  return urls.find((u) => new URL(u, document.baseURI).origin === location.origin) || urls[0] || null;
}

function waitFor(target, name) {
  return new Promise((resolve, reject) => {
    const done = () => {
      target.removeEventListener(name, done);
      target.removeEventListener("error", failed);
      resolve();
    };
    const failed = () => {
      target.removeEventListener(name, done);
      target.removeEventListener("error", failed);
      reject(new Error(`media error while waiting for ${name}`));
    };
    target.addEventListener(name, done);
    target.addEventListener("error", failed);
  });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class Player {
  /** video: the <video>; say(text): shows the player's state; onTime(flowNs BigInt | null). */
  constructor(video, { say, onTime, segmentsUrl }) {
    this.video = video;
    this.say = say;
    this.onTime = onTime;
    this.segmentsUrl = segmentsUrl; // (flowId, params) -> URL of a segments listing
    this.session = null;
    video.addEventListener("timeupdate", () => this.tick());
    video.addEventListener("waiting", () => this.jumpGap());
  }

  static available() {
    return typeof MediaSource !== "undefined";
  }

  stop() {
    if (this.session) {
      this.session.controller.abort();
      if (this.session.objectUrl) URL.revokeObjectURL(this.session.objectUrl);
      this.session = null;
    }
    this.video.removeAttribute("src");
    this.video.load();
    this.onTime(null);
  }

  /**
   * Play flow from the segment at or after `from` (BigInt ns). Resolves true once playback has
   * been started, false (having said why) when this browser or this flow cannot play here.
   */
  async play(flow, from) {
    this.stop();
    const controller = new AbortController();
    const session = { flow, controller, signal: controller.signal, pending: [], next: null, initId: null, type: null };
    this.session = session;
    this.say("Loading…");
    const timerange = formatTimerange(from, null);
    session.next = this.segmentsUrl(flow.id, { timerange, limit: PAGE });
    const first = await this.nextSegment(session);
    if (!first) {
      this.say("There is nothing to play from here.");
      return false;
    }
    if (!first.init_object) {
      this.say("These segments have no init object: only fragmented MP4 with an init segment plays in the page.");
      return false;
    }
    let init;
    try {
      init = await this.fetchObject(first.init_object, session);
    } catch (error) {
      this.say(`The init object could not be fetched (${error.message}). ${this.fetchHint(first.init_object)}`);
      return false;
    }
    const type = mseType(init, flow.container === "audio/mp4" ? "audio/mp4" : "video/mp4");
    if (!type) {
      this.say("The init segment's codecs are not ones this viewer can name for the browser.");
      return false;
    }
    if (!MediaSource.isTypeSupported(type)) {
      this.say(`This browser cannot play ${type} through Media Source Extensions.`);
      return false;
    }
    session.type = type;
    session.initId = first.init_object.object_id;
    session.origin = parseTimerange(first.timerange).start;
    session.pending.unshift(first);
    const mediaSource = new MediaSource();
    session.objectUrl = URL.createObjectURL(mediaSource);
    this.video.src = session.objectUrl;
    await waitFor(mediaSource, "sourceopen");
    if (session !== this.session) return false;
    session.mediaSource = mediaSource;
    session.buffer = mediaSource.addSourceBuffer(type);
    session.buffer.mode = "segments";
    await this.append(session, init);
    this.say(`Playing ${type}.`);
    this.feed(session).catch((error) => {
      if (session === this.session && error.name !== "AbortError") this.say(`Playback stopped: ${error.message}`);
    });
    this.video.play().catch(() => this.say("Press play on the video to start (the browser wants a gesture)."));
    return true;
  }

  fetchHint(object) {
    const url = pickUrl(object.get_urls);
    if (url && new URL(url, document.baseURI).origin !== location.origin) {
      return "Its URL is on another host (presigned S3): the viewer fetches from this server only; open the HLS playlist in a player instead.";
    }
    return "";
  }

  async fetchObject(object, session) {
    const url = pickUrl(object.get_urls);
    if (!url) throw new Error("it has no get_urls");
    return getBytes(url, { signal: session.signal });
  }

  /** The next segment to play (listing pages as needed), or null at the end. */
  async nextSegment(session) {
    while (!session.pending.length && session.next) {
      const { body, response } = await getJson(session.next, { signal: session.signal });
      session.pending.push(...body);
      const link = response.headers.get("Link");
      const match = link && /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
      session.next = match ? new URL(match[1], document.baseURI) : null;
    }
    return session.pending.shift() || null;
  }

  async append(session, bytes) {
    const buffer = session.buffer;
    for (;;) {
      try {
        buffer.appendBuffer(bytes);
        await waitFor(buffer, "updateend");
        return;
      } catch (error) {
        if (error.name !== "QuotaExceededError") throw error;
        await this.trim(session, 5);
      }
    }
  }

  async trim(session, keep = BEHIND_S) {
    const buffer = session.buffer;
    const until = this.video.currentTime - keep;
    if (buffer.buffered.length && buffer.buffered.start(0) < until) {
      buffer.remove(0, until);
      await waitFor(buffer, "updateend");
    }
  }

  ahead() {
    const { buffered, currentTime } = this.video;
    for (let i = 0; i < buffered.length; i += 1) {
      if (buffered.end(i) > currentTime) return buffered.end(buffered.length - 1) - currentTime;
    }
    return 0;
  }

  async feed(session) {
    for (;;) {
      if (session !== this.session) return;
      if (this.ahead() > AHEAD_S) {
        await sleep(250, session.signal);
        continue;
      }
      const segment = await this.nextSegment(session);
      if (session !== this.session) return;
      if (!segment) {
        if (session.mediaSource.readyState === "open") session.mediaSource.endOfStream();
        return;
      }
      if (segment.init_object && segment.init_object.object_id !== session.initId) {
        const init = await this.fetchObject(segment.init_object, session);
        const type = mseType(init, session.type.split(";")[0]);
        if (type && type !== session.type && session.buffer.changeType) session.buffer.changeType(type);
        session.type = type || session.type;
        session.initId = segment.init_object.object_id;
        await this.append(session, init);
      }
      const bytes = await this.fetchObject(segment, session);
      const offset = segment.ts_offset ? parseTimestamp(segment.ts_offset) : 0n;
      session.buffer.timestampOffset = seconds(offset - session.origin);
      await this.trim(session);
      await this.append(session, bytes);
      this.jumpGap();
    }
  }

  /** At a hole between buffered ranges, go on at the next range. */
  jumpGap() {
    const video = this.video;
    const { buffered, currentTime } = video;
    for (let i = 0; i < buffered.length; i += 1) {
      if (buffered.start(i) <= currentTime + 0.05 && currentTime < buffered.end(i) - 0.05) return;
    }
    for (let i = 0; i < buffered.length; i += 1) {
      if (buffered.start(i) > currentTime) {
        video.currentTime = buffered.start(i) + 0.001;
        return;
      }
    }
  }

  tick() {
    const session = this.session;
    if (!session || session.origin === undefined) return;
    this.onTime(session.origin + BigInt(Math.round(this.video.currentTime * 1e9)));
    if (this.video.readyState < 3) this.jumpGap();
  }
}
