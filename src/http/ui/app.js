// The page: wires the API key prompt, the upload zone, the job board and the live updates.
import { h, replace } from './dom.js';
import { api, apiKey, setApiKey, captureKeyFromUrl, onUnauthorized } from './api.js';
import { itemsFromInput, itemsFromDrop, checkLimits, upload, formatBytes } from './upload.js';
import { renderSummary } from './summary.js';
import { JobBoard } from './jobs.js';
import { liveJobs } from './live.js';
import { DeliveriesPanel } from './outbound.js';

const $ = (id) => document.getElementById(id);

captureKeyFromUrl();

function message(text, kind = 'info') {
  replace($('upload-message'), text ? h('p', { class: kind === 'error' ? 'error' : 'info' }, text) : null);
}

// --- API key -------------------------------------------------------------------------------
let keyPrompt = null;
/** Asks for the key (once at a time); resolves true when the user entered one. */
function askForKey(reason) {
  keyPrompt ??= new Promise((resolve) => {
    const dialog = $('key-dialog');
    $('key-error').textContent = reason ?? (apiKey() ? 'The node refused this key: enter the right one.' : '');
    $('key-input').value = '';
    dialog.addEventListener(
      'close',
      () => {
        const ok = dialog.returnValue === 'ok' && $('key-input').value !== '';
        if (ok) setApiKey($('key-input').value);
        keyPrompt = null;
        resolve(ok);
        if (ok) afterNewKey();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return keyPrompt;
}
// After "Cancel", background calls (polling) stop asking; the header button asks again.
let declined = false;
onUnauthorized(async () => {
  if (declined) return false;
  const ok = await askForKey();
  declined = !ok;
  return ok;
});
$('key-button').addEventListener('click', () => {
  declined = false;
  askForKey('');
});

// --- node health ---------------------------------------------------------------------------
async function checkHealth() {
  const el = $('node-status');
  try {
    const r = await fetch('/health');
    const body = await r.json();
    el.dataset.state = r.ok ? 'ok' : 'bad';
    el.textContent = r.ok ? `node ${body.aet ?? ''} healthy` : `node unhealthy: ${body.reason ?? r.status}`;
    el.title = body.freeDiskMb !== undefined ? `${body.freeDiskMb} MB free on the data volume` : '';
  } catch {
    el.dataset.state = 'bad';
    el.textContent = 'node unreachable';
  }
}
checkHealth();
setInterval(checkHealth, 15_000);

// --- jobs ----------------------------------------------------------------------------------
const board = new JobBoard({ list: $('job-list'), empty: $('jobs-empty'), detail: $('job-detail'), detailBody: $('detail-body'), message });
const resync = () => board.refresh().catch((e) => message(e.message, 'error'));
const live = liveJobs({
  onJob: (job) => board.update(job),
  onResync: () => board.refresh(),
  onState: (state) => {
    const el = $('live-status');
    el.dataset.state = state === 'live' ? 'ok' : state === 'polling' ? 'bad' : 'unknown';
    el.textContent = state === 'live' ? 'updates: live' : state === 'polling' ? 'updates: polling (event stream unavailable)' : 'updates: connecting…';
  },
});
resync();
const deliveries = new DeliveriesPanel({ list: $('delivery-list'), empty: $('deliveries-empty'), message });
deliveries.start();

function afterNewKey() {
  live.restart();
  resync();
  deliveries.refresh().catch(() => {});
}

// --- upload --------------------------------------------------------------------------------
let uploading = false;

async function send(items) {
  if (uploading) return message('An upload is already running: wait for it to finish.', 'error');
  const problem = checkLimits(items);
  if (problem) return message(problem, 'error');
  uploading = true;
  const total = items.reduce((a, i) => a + i.file.size, 0);
  const bar = $('upload-bar');
  const text = $('upload-progress-text');
  $('upload-progress').hidden = false;
  bar.value = 0;
  text.textContent = `0 / ${formatBytes(total)}`;
  replace($('upload-summary'));
  message(`Uploading ${items.length} file${items.length === 1 ? '' : 's'} (${formatBytes(total)})…`);
  try {
    let result;
    for (let attempt = 0; ; attempt++) {
      try {
        result = await upload(items, (loaded, all) => {
          bar.value = all > 0 ? loaded / all : 1;
          text.textContent = `${formatBytes(loaded)} / ${formatBytes(all)}`;
        });
        break;
      } catch (e) {
        if (e.status === 401 && attempt === 0 && (await askForKey())) continue;
        throw e;
      }
    }
    bar.value = 1;
    const refused = result.refused?.length ?? 0;
    message(
      `Upload finished: ${result.stored} stored, ${result.duplicates} duplicate${result.duplicates === 1 ? '' : 's'}${refused ? `, ${refused} refused` : ''}. ` +
        (result.stored > 0 ? 'Each study is processed once it has been quiet for the stable window.' : ''),
      refused && !result.stored ? 'error' : 'info',
    );
    replace($('upload-summary'), renderSummary(result));
    resync();
  } catch (e) {
    message(e.message, 'error');
  } finally {
    uploading = false;
  }
}

const zone = $('drop-zone');
zone.addEventListener('dragover', (e) => {
  e.preventDefault();
  zone.classList.add('over');
});
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', async (e) => {
  e.preventDefault();
  zone.classList.remove('over');
  try {
    send(await itemsFromDrop(e.dataTransfer));
  } catch (err) {
    message(`the dropped items could not be read: ${err.message}`, 'error');
  }
});
// Dropping beside the zone must not navigate away from the page.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());
for (const id of ['file-input', 'folder-input']) {
  $(id).addEventListener('change', (e) => {
    const items = itemsFromInput(e.target);
    e.target.value = '';
    send(items);
  });
}
zone.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') $('file-input').click();
});
