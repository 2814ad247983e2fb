// The TAMS API as the page sees it: GETs relative to the page (../v8.2/), with the credentials the
// user typed, held in this module's memory only (never localStorage, sessionStorage or cookies: a
// reload or a closed tab forgets them).

export const API_BASE = new URL("../v8.2/", document.baseURI);

export class ApiError extends Error {
  constructor(status, summary) {
    super(summary || `HTTP ${status}`);
    this.status = status;
  }
}

let authorization = null; // the Authorization header value, or null
let bearerToken = null; // kept apart: players take it as ?access_token=

/** Use a bearer token (kind "bearer") or a user name and password (kind "basic"). */
export function signIn(kind, secret, user = "") {
  if (kind === "bearer") {
    bearerToken = secret.trim();
    authorization = `Bearer ${bearerToken}`;
  } else {
    bearerToken = null;
    const bytes = new TextEncoder().encode(`${user}:${secret}`);
    authorization = `Basic ${btoa(String.fromCharCode(...bytes))}`;
  }
}

export function signOut() {
  authorization = null;
  bearerToken = null;
}

export function signedIn() {
  return authorization !== null;
}

export function token() {
  return bearerToken;
}

/** An absolute URL of an API path ("flows", "flows/<id>/segments") with its query. */
export function apiUrl(path, params = {}) {
  const url = new URL(path, API_BASE);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  return url;
}

/** The "next" URL of a Link header (absolute; null on the last page). */
export function nextLink(response) {
  const header = response.headers.get("Link");
  const match = header && /<([^>]+)>\s*;\s*rel="?next"?/.exec(header);
  return match ? new URL(match[1], API_BASE) : null;
}

/**
 * GET a URL of this server with the credentials; the parsed JSON and the response (for its
 * paging headers). credentials "omit": the browser neither adds credentials of its own nor shows
 * its sign-in dialog on a 401 (the page asks instead).
 */
export async function getJson(url, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (authorization) headers.Authorization = authorization;
  const response = await fetch(url, { headers, credentials: "omit", cache: "no-store", signal });
  if (!response.ok) {
    let summary = "";
    try {
      summary = (await response.json()).summary || "";
    } catch {
      // not JSON: the status says enough
    }
    throw new ApiError(response.status, summary);
  }
  return { body: await response.json(), response };
}

export function get(path, params = {}, options = {}) {
  return getJson(apiUrl(path, params), options);
}

/** Bytes of a media URL (a segment's get_url: signed, so no API credentials are sent). */
export async function getBytes(url, { signal } = {}) {
  const response = await fetch(url, { credentials: "omit", signal });
  if (!response.ok) throw new ApiError(response.status, `media object: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}
