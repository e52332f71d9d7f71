// Collecting what the user dropped or chose (files, whole folders, archives) and posting it to
// /api/upload as multipart `files[]`, each part named with its relative path.
import { keyHeaders, errorText } from './api.js';

/** The node's limits (src/http upload module constants), checked here too so a user learns before sending 3 GB. */
export const MAX_UPLOAD_BYTES = 2 * 1024 ** 3;
export const MAX_UPLOAD_FILES = 50_000;

/** @typedef {{ file: File, name: string }} UploadItem  name: the path relative to what was chosen */

/** Files of an <input type=file> (with webkitdirectory, webkitRelativePath holds the folder path). */
export function itemsFromInput(input) {
  return Array.from(input.files ?? [], (file) => ({ file, name: file.webkitRelativePath || file.name }));
}

/** Files of a drop, walking dropped folders (DataTransferItem.webkitGetAsEntry). */
export async function itemsFromDrop(dataTransfer) {
  const entries = Array.from(dataTransfer.items ?? [])
    .filter((i) => i.kind === 'file')
    .map((i) => (typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null));
  if (entries.length === 0 || entries.some((e) => e === null)) {
    // No entry API (or a non-file item): plain files only.
    return Array.from(dataTransfer.files ?? [], (file) => ({ file, name: file.name }));
  }
  const items = [];
  for (const entry of entries) await walkEntry(entry, '', items);
  return items;
}

async function walkEntry(entry, prefix, out) {
  const name = prefix + entry.name;
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, name });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  // readEntries returns at most ~100 entries per call: read until it returns none.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walkEntry(child, name + '/', out);
  }
}

/** Why this selection cannot be sent, or null. */
export function checkLimits(items) {
  if (items.length === 0) return 'nothing to upload: the selection holds no file';
  if (items.length > MAX_UPLOAD_FILES) return `${items.length} files selected: at most ${MAX_UPLOAD_FILES} per upload; upload the folder in parts`;
  const bytes = items.reduce((a, i) => a + i.file.size, 0);
  if (bytes > MAX_UPLOAD_BYTES) return `${formatBytes(bytes)} selected: at most ${formatBytes(MAX_UPLOAD_BYTES)} per upload; upload in parts`;
  return null;
}

/**
 * POSTs the items; onProgress(loadedBytes, totalBytes) while sending. Resolves the node's JSON
 * answer; rejects with an Error whose message is the node's reason (400/413/507) or the network failure.
 */
export function upload(items, onProgress) {
  const form = new FormData();
  for (const { file, name } of items) form.append('files[]', file, name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/upload');
    for (const [k, v] of Object.entries(keyHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      let body = xhr.responseText;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* keep the text */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body && typeof body === 'object') resolve(body);
      else {
        const e = new Error(errorText(xhr.status, body, 'upload'));
        e.status = xhr.status;
        reject(e);
      }
    };
    xhr.onerror = () => reject(new Error('upload failed: the connection to the node was lost (is it running? is the upload over the limits?)'));
    xhr.send(form);
  });
}

export function formatBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
