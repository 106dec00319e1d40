// The time range selector shared by the usage pages: presets ending now, or everything in the ledger.
import { field, h } from './dom.js';

const PRESETS = [['1h', 3600], ['24h', 86400], ['7d', 7 * 86400], ['30d', 30 * 86400], ['all', null]];
let chosen = '24h';

export function current() {
  const seconds = PRESETS.find(([name]) => name === chosen)[1];
  const until = Math.ceil(Date.now() / 1000) + 1; // 'until' is exclusive: include this second
  return { name: chosen, since: seconds === null ? undefined : until - 1 - seconds, until };
}

export function selector(onChange) {
  const select = h('select', { id: 'range', onchange: () => { chosen = select.value; onChange(); } },
    PRESETS.map(([name]) => h('option', { value: name, selected: name === chosen }, name)));
  return field('Time range', select);
}
