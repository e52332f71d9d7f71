// Live job updates: server-sent events from /api/events, with polling while the stream is down.
import { withKey } from './api.js';

const POLL_MS = 3000;
const RECONNECT_MS = 10_000;

/**
 * @param {{ onJob: (job) => void, onResync: () => Promise<void>, onState: (state: 'live'|'polling'|'connecting') => void }} handlers
 * @returns {{ restart: () => void }}
 */
export function liveJobs({ onJob, onResync, onState }) {
  let source = null;
  let poll = null;
  let retry = null;

  const startPolling = () => {
    onState('polling');
    if (poll) return;
    poll = setInterval(() => onResync().catch(() => {}), POLL_MS);
  };
  const stopPolling = () => {
    clearInterval(poll);
    poll = null;
  };

  const connect = () => {
    clearTimeout(retry);
    source?.close();
    onState('connecting');
    source = new EventSource(withKey('/api/events'));
    source.addEventListener('hello', () => {
      stopPolling();
      onState('live');
      // Events missed while disconnected are not replayed: take the list once.
      onResync().catch(() => {});
    });
    source.addEventListener('job', (e) => {
      try {
        onJob(JSON.parse(e.data));
      } catch {
        /* a malformed event: the next resync corrects the list */
      }
    });
    source.onerror = () => {
      // CONNECTING: the browser retries by itself. CLOSED (an HTTP error such as 401/404): we retry later.
      if (source.readyState === EventSource.CLOSED) {
        startPolling();
        retry = setTimeout(connect, RECONNECT_MS);
      } else onState('connecting');
    };
  };

  connect();
  return { restart: connect };
}
