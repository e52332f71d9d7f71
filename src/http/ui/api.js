// The node's HTTP API as the page uses it: the API key (sessionStorage, asked for on a 401) and
// fetch/URL helpers that carry it. Headers carry the key where the page can set them; EventSource,
// links and downloads cannot, so their URLs carry it as ?key= (the node accepts that for GET only).

const KEY_STORE = 'rtpipeline.apiKey';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let askForKey = async () => false;

/** Sets the function called on a 401; it resolves true once the user has entered a new key. */
export function onUnauthorized(fn) {
  askForKey = fn;
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE) ?? '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

/** A page opened as /?key=SECRET keeps the key for the tab and drops it from the address bar and history. */
export function captureKeyFromUrl() {
  const url = new URL(location.href);
  const key = url.searchParams.get('key');
  if (key === null) return;
  setApiKey(key);
  url.searchParams.delete('key');
  history.replaceState(null, '', url.pathname + url.search + url.hash);
}

/** `path` with ?key= added when a key is set: for EventSource, <a href> and downloads. */
export function withKey(path) {
  const key = apiKey();
  if (!key) return path;
  const url = new URL(path, location.origin);
  url.searchParams.set('key', key);
  return url.pathname + url.search;
}

export function keyHeaders() {
  const key = apiKey();
  return key ? { 'X-API-Key': key } : {};
}

/**
 * fetch() with the key; on 401 asks for a key once and retries. Resolves the Response for any
 * other status (the caller decides what a 404 means).
 */
export async function request(path, init = {}) {
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(path, { ...init, headers: { ...keyHeaders(), ...(init.headers ?? {}) } });
    if (r.status !== 401 || attempt > 0) return r;
    if (!(await askForKey())) return r;
  }
}

/** request() expecting JSON and a 2xx status; throws ApiError with the node's own error text otherwise. */
export async function api(path, init = {}) {
  const r = await request(path, init);
  const text = await r.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text for the message */
  }
  if (!r.ok) throw new ApiError(r.status, errorText(r.status, body, `${init.method ?? 'GET'} ${path}`));
  return body;
}

/** The message the user sees for a failed call: the node's {"error": ...} when it sent one. */
export function errorText(status, body, what) {
  const detail = body && typeof body === 'object' && typeof body.error === 'string' ? body.error : typeof body === 'string' && body.trim() ? body.trim().slice(0, 300) : '';
  return `${what} failed (HTTP ${status})${detail ? `: ${detail}` : ''}`;
}
