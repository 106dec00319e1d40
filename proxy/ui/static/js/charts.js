// Charts drawn as plain SVG by this file (no chart library): bars over a time axis that spans the chosen
// range, and bars per category. The value axis always starts at zero; its ticks use the page's formatters
// (one money format everywhere). Every text goes in through textContent, so names show as the characters
// they are; no inline style either (our CSP forbids it): SVG presentation attributes only.
import { h } from './dom.js';
import { FORMATS, tick } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 280;
const PAD = { l: 90, r: 12, t: 12, b: 44 };
const COLORS = ['#2457c5', '#e07b39', '#1e7a46', '#b42318', '#7b5bb5', '#0e7c86'];

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// A "nice" top for the value axis and its tick step: 1, 2, 2.5 or 5 times a power of ten.
export function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 1, zero: true };
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= raw);
  return { top: step * Math.ceil(max / step - 1e-9), step, zero: false };
}

function frame(id, title, legend) {
  const box = h('div', { class: 'chart', id });
  const figure = h('figure', { class: 'card' }, h('figcaption', {}, title), box);
  if (legend.length > 1) {
    box.append(h('div', { class: 'legend' }, legend.map((name, i) => h('span', { class: `key c${i}` }, name))));
  }
  return { box, figure };
}

function valueAxis(svg, scale, format, plotH) {
  const y = (v) => PAD.t + plotH - (v / scale.top) * plotH;
  const steps = scale.zero ? [0] : Array.from({ length: Math.round(scale.top / scale.step) + 1 }, (_, i) => i * scale.step);
  for (const v of steps) {
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), stroke: v === 0 ? '#9aa5b1' : '#e4e7eb' }));
    svg.append(s('text', { class: 'y-tick', x: PAD.l - 6, y: y(v) + 4, 'text-anchor': 'end', 'data-value': v }, format(v)));
  }
  return y;
}

function bars(svg, series, n, x, width, y, labels, format) {
  const base = new Array(n).fill(0);
  series.forEach((serie, si) => {
    serie.values.forEach((v, i) => {
      const value = Number(v) || 0;
      if (value <= 0) return;
      const top = y(base[i] + value);
      const rect = s('rect', { x: x(i, si), y: top, width, height: Math.max(1, y(base[i]) - top), fill: COLORS[si % COLORS.length] });
      rect.append(s('title', {}, `${labels[i]}${series.length > 1 ? ` · ${serie.name}` : ''}: ${format(value)}`));
      svg.append(rect);
      if (serie.stacked) base[i] += value;
    });
  });
}

function svgRoot() {
  return s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', preserveAspectRatio: 'xMidYMid meet' });
}

// Bars per time bucket. at: bucket starts (unix seconds, every bucket of the range, zeros included);
// series: [{name, values}]; stacked: one bar per bucket, else side by side.
export function timeChart(id, title, { at, step, series, format = 'num', stacked = false }) {
  const { box, figure } = frame(id, title, series.map((x) => x.name));
  const fmt = FORMATS[format];
  if (!at.length) {
    box.append(h('p', { class: 'muted empty' }, 'No data in this range.'));
    return figure;
  }
  const n = at.length;
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const totals = at.map((_, i) => (stacked ? series.reduce((sum, x) => sum + (Number(x.values[i]) || 0), 0)
    : Math.max(...series.map((x) => Number(x.values[i]) || 0))));
  const scale = niceScale(Math.max(0, ...totals));
  const svg = svgRoot();
  const y = valueAxis(svg, scale, fmt, plotH);
  const slot = plotW / n;
  const groups = stacked ? 1 : series.length;
  const width = Math.max(1, (slot * 0.8) / groups);
  const x = (i, si) => PAD.l + i * slot + slot * 0.1 + (stacked ? 0 : si * width);
  const span = at[n - 1] + step - at[0];
  const labels = at.map((t) => tick(t, step, span));
  bars(svg, series.map((x) => ({ ...x, stacked })), n, x, width, y, labels, fmt);
  const every = Math.max(1, Math.ceil(n / (span > 86400 ? 4 : 6))); // dated labels are longer
  for (let i = 0; i < n; i += every) {
    const cx = PAD.l + i * slot + slot / 2;
    svg.append(s('line', { x1: cx, x2: cx, y1: H - PAD.b, y2: H - PAD.b + 4, stroke: '#9aa5b1' }));
    svg.append(s('text', { class: 'x-tick', x: cx, y: H - PAD.b + 18, 'text-anchor': 'middle', 'data-at': at[i] }, labels[i]));
  }
  svg.append(s('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end', class: 'axis-note' }, 'UTC'));
  box.append(svg);
  box.setAttribute('data-drawn', 'true');
  box.setAttribute('data-points', String(n));
  return figure;
}

// Bars per category (provider, model...), side by side when there are several series.
export function barChart(id, title, { labels, series, format = 'num' }) {
  const { box, figure } = frame(id, title, series.map((x) => x.name));
  const fmt = FORMATS[format];
  const n = labels.length;
  if (!n) {
    box.append(h('p', { class: 'muted empty' }, 'No data in this range.'));
    return figure;
  }
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const scale = niceScale(Math.max(0, ...series.flatMap((x) => x.values.map((v) => Number(v) || 0))));
  const svg = svgRoot();
  const y = valueAxis(svg, scale, fmt, plotH);
  const slot = plotW / n;
  const width = Math.max(1, (slot * 0.7) / series.length);
  const x = (i, si) => PAD.l + i * slot + slot * 0.15 + si * width;
  bars(svg, series, n, x, width, y, labels, fmt);
  labels.forEach((name, i) => {
    const text = name.length > 14 ? `${name.slice(0, 13)}…` : name;
    const node = s('text', { class: 'x-tick', x: PAD.l + i * slot + slot / 2, y: H - PAD.b + 18, 'text-anchor': 'middle' }, text);
    node.append(s('title', {}, name));
    svg.append(node);
  });
  box.append(svg);
  box.setAttribute('data-drawn', 'true');
  return figure;
}
