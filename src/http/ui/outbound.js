// The "Deliveries" panel: what is waiting to leave the node (pending, sending), what could not
// (failed: refused or given up; held: an RTSTRUCT that failed validation), with the reason, the
// destination's circuit state, and a Retry button for failed and held items.
import { h, replace } from './dom.js';
import { api } from './api.js';

const SHOWN = 'pending,sending,failed,held';
const REFRESH_MS = 5000;
/** Faster while something is on its way, so a retried delivery is seen to finish. */
const ACTIVE_REFRESH_MS = 1000;

export class DeliveriesPanel {
  /** @param {{ list: HTMLElement, empty: HTMLElement, message: (text: string, kind?: string) => void }} el */
  constructor(el) {
    this.el = el;
    this.timer = null;
    this.active = false;
  }

  start() {
    const tick = () => this.refresh().catch(() => {}).finally(() => (this.timer = setTimeout(tick, this.active ? ACTIVE_REFRESH_MS : REFRESH_MS)));
    tick();
  }

  async refresh() {
    const items = await api(`/api/outbound?state=${SHOWN}`);
    this.render(items);
  }

  render(items) {
    this.active = items.some((i) => i.state === 'pending' || i.state === 'sending');
    this.el.empty.hidden = items.length > 0;
    replace(this.el.list, items.map((item) => this.row(item)));
  }

  row(item) {
    const dead = item.state === 'failed' || item.state === 'held';
    const retry = dead
      ? h('button', { type: 'button', class: 'secondary retry', 'data-id': item.id, onclick: (e) => this.retry(item, e.target) }, 'Retry')
      : null;
    return h(
      'li',
      { class: `delivery ${item.state}`, 'data-id': item.id, 'data-state': item.state },
      h('div', {}, h('strong', {}, `#${item.id} → ${item.destination}`), ' ', h('span', { class: 'status', 'data-state': dead ? 'bad' : 'unknown' }, item.state),
        item.circuit && item.circuit !== 'closed' ? h('span', { class: 'status', 'data-state': 'bad', title: 'circuit breaker of this destination' }, ` circuit ${item.circuit}`) : null),
      h('div', { class: 'muted' }, `${item.files} file${item.files === 1 ? '' : 's'}, ${item.delivered} delivered, ${item.attempts} attempt${item.attempts === 1 ? '' : 's'}`,
        item.study_uid ? ` · study ${item.study_uid}` : '', ` · updated ${new Date(item.updated_at).toLocaleString()}`),
      item.last_error ? h('div', { class: dead ? 'error reason' : 'muted reason' }, item.last_error) : null,
      h('div', { class: 'actions' }, retry),
    );
  }

  async retry(item, button) {
    button.disabled = true;
    try {
      await api(`/api/outbound/${item.id}/retry`, { method: 'POST' });
      this.el.message(`Delivery #${item.id} to ${item.destination} queued again.`);
      await this.refresh();
    } catch (e) {
      this.el.message(e.message, 'error');
      button.disabled = false;
    }
  }
}
