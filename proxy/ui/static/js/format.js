// How numbers read on every page: ONE money formatter (amounts are integer micro-USD from the API).
//   $0 · $0.00025 · $0.012 · $0.25 · $20.00 · $1,234.50
// Amounts of a dollar or more get cents; smaller ones two significant digits and at least cents (never a row of zeros, never
// an SI suffix), so that a cheap request and a monthly budget read in the same format side by side.

export function usd(micro) {
  if (micro === null || micro === undefined || Number.isNaN(Number(micro))) return '–';
  const value = Number(micro) / 1e6;
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  if (abs === 0) return '$0';
  const digits = abs >= 1 ? 2 : Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(abs))));
  if (abs >= 1 || Number(abs.toFixed(digits)) >= 1) {
    return `${sign}$${abs.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  }
  // below a dollar: two significant digits, at least cents: 0.25, 0.10, 0.012, 0.00025
  const text = abs.toFixed(digits).replace(/(\.\d\d\d*?)0+$/, '$1');
  return `${sign}$${text}`;
}

// A price given in USD (e.g. per 1M tokens), in the same format as an amount.
export function price(dollars) {
  if (dollars === null || dollars === undefined || dollars === '') return '–';
  return usd(Math.round(Number(dollars) * 1e6));
}

export function num(value) {
  return value === null || value === undefined ? '–' : Number(value).toLocaleString('en-US');
}

export function ms(value) {
  return value === null || value === undefined ? '–' : `${num(value)} ms`;
}

// A share (0..1) as a percentage.
export function pct(value) {
  if (value === null || value === undefined) return '–';
  const p = value * 100;
  return `${p === 0 || p >= 10 ? p.toFixed(0) : p.toFixed(1)} %`;
}

export function when(seconds) {
  if (!seconds) return '–';
  return new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

// "3 min ago", "2 h ago", "5 d ago" (and the exact time as its title, by the caller).
export function ago(seconds, now = Date.now() / 1000) {
  if (!seconds) return 'never';
  const d = Math.max(0, now - seconds);
  if (d < 60) return 'just now';
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}

// A time axis label for a bucket start, as fine as the bucket size (UTC, as the tables).
export function tick(seconds, step, span) {
  const iso = new Date(seconds * 1000).toISOString();
  if (step >= 86400) return iso.slice(5, 10);
  if (span > 86400) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return iso.slice(11, 16);
}

export const FORMATS = { usd, num, ms, pct: (v) => pct(v) };
