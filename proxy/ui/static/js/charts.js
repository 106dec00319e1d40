// Charts with plotly.js, loaded on first use (it is large: the page paints and fills its tables first).
import { h } from './dom.js';

let loading = null;

function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = new URL('../vendor/plotly.min.js', import.meta.url).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error('plotly.js did not load'));
      document.head.append(script);
    });
  }
  return loading;
}

// plotly.js reads a few HTML tags in labels (<b>, <br>, <a>): escape names so that they show as text.
export function label(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const LAYOUT = {
  margin: { l: 60, r: 20, t: 36, b: 60 },
  height: 300,
  paper_bgcolor: 'rgba(0,0,0,0)',
  plot_bgcolor: 'rgba(0,0,0,0)',
  font: { family: 'system-ui, sans-serif', size: 12 },
  legend: { orientation: 'h', y: -0.2 },
};

// A titled chart box; the chart is drawn into it when plotly.js is ready.
export function chart(id, title, traces, layout = {}) {
  const box = h('div', { class: 'chart', id });
  const figure = h('figure', { class: 'card' }, h('figcaption', {}, title), box);
  if (!traces.length || traces.every((t) => !(t.x || t.values || []).length)) {
    box.append(h('p', { class: 'muted empty' }, 'No data in this range.'));
    return figure;
  }
  plotly().then((Plotly) => Plotly.newPlot(box, traces, { ...LAYOUT, ...layout },
    { displayModeBar: false, responsive: true }))
    .then(() => box.setAttribute('data-drawn', 'true'))
    .catch((err) => box.append(h('p', { class: 'error' }, String(err))));
  return figure;
}
