/**
 * The capacity run's report: one self-contained HTML page (inline SVG, no scripts, no network) with the
 * summary per target, latency histograms, and CPU and memory of every process over time.
 */
import fs from 'node:fs';

export interface Series { name: string; t: number[]; cpuPct: number[]; rssMiB: number[] }

export interface ReportRun {
  name: string;
  result: Record<string, unknown> & { added_latency_ms: Record<string, unknown> };
  series: Series[];
  added: Float64Array;
  final: Float64Array;
  partial: Float64Array;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Log-spaced bins from 0.05 ms to 10 s; counts of samples per bin. */
function histogram(sorted: Float64Array): { edges: number[]; counts: number[] } {
  const edges: number[] = [0];
  for (let e = 0.05; e < 10_000; e *= 1.25) edges.push(e);
  edges.push(Infinity);
  const counts = new Array<number>(edges.length - 1).fill(0);
  let b = 0;
  for (let i = 0; i < sorted.length; i++) {
    const v = Math.max(0, sorted[i]!);
    while (b < counts.length - 1 && v >= edges[b + 1]!) b++;
    counts[b]!++;
  }
  return { edges, counts };
}

function histogramSvg(title: string, sets: { name: string; sorted: Float64Array }[]): string {
  const W = 720, H = 220, L = 50, B = 30;
  const hs = sets.map((s) => ({ ...s, h: histogram(s.sorted) }));
  const nonEmpty = hs.flatMap((h) => h.h.counts.map((c, i) => (c > 0 ? i : -1))).filter((i) => i >= 0);
  if (nonEmpty.length === 0) return `<p>${esc(title)}: no samples</p>`;
  const lo = Math.max(0, Math.min(...nonEmpty) - 1), hi = Math.min(hs[0]!.h.counts.length - 1, Math.max(...nonEmpty) + 1);
  const bins = hi - lo + 1;
  const bw = (W - L - 10) / bins;
  // Each set as a share of its samples, so targets of different sizes compare.
  const share = hs.map((h) => h.h.counts.map((c) => c / Math.max(1, h.sorted.length)));
  const top = Math.max(...share.flatMap((s) => s.slice(lo, hi + 1)));
  let out = `<svg width="${W}" height="${H}" role="img"><title>${esc(title)}</title>`;
  hs.forEach((h, k) => {
    for (let i = lo; i <= hi; i++) {
      const y = share[k]![i]! / top;
      if (y === 0) continue;
      const x = L + (i - lo) * bw + (k * bw) / hs.length;
      out += `<rect x="${x.toFixed(1)}" y="${(H - B - y * (H - B - 10)).toFixed(1)}" width="${Math.max(1, bw / hs.length - 1).toFixed(1)}" height="${(y * (H - B - 10)).toFixed(1)}" fill="${COLORS[k % COLORS.length]}"/>`;
    }
  });
  for (let i = lo; i <= hi; i += Math.max(1, Math.round(bins / 8))) {
    const e = h0(hs[0]!.h.edges[i]!);
    out += `<text x="${(L + (i - lo) * bw).toFixed(1)}" y="${H - 10}" font-size="10">${e}</text>`;
  }
  out += `<text x="${L}" y="12" font-size="11">${esc(title)} (share of samples per bin, ms on a log scale)</text>`;
  hs.forEach((h, k) => { out += `<text x="${W - 200}" y="${14 + k * 13}" font-size="11" fill="${COLORS[k % COLORS.length]}">■ ${esc(h.name)} (${h.sorted.length})</text>`; });
  return `${out}</svg>`;
}

const h0 = (v: number) => (v < 1 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));

function lineSvg(title: string, unit: string, series: { name: string; t: number[]; y: number[] }[]): string {
  const W = 720, H = 200, L = 50, B = 25;
  const tMax = Math.max(1, ...series.flatMap((s) => s.t));
  const yMax = Math.max(1, ...series.flatMap((s) => s.y)) * 1.1;
  let out = `<svg width="${W}" height="${H}" role="img"><title>${esc(title)}</title>`;
  series.forEach((s, k) => {
    const pts = s.t.map((t, i) => `${(L + (t / tMax) * (W - L - 10)).toFixed(1)},${(H - B - (s.y[i]! / yMax) * (H - B - 15)).toFixed(1)}`).join(' ');
    out += `<polyline fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="1.5" points="${pts}"/>`;
    out += `<text x="${W - 220}" y="${14 + k * 13}" font-size="11" fill="${COLORS[k % COLORS.length]}">■ ${esc(s.name)}</text>`;
  });
  out += `<text x="${L}" y="12" font-size="11">${esc(title)}</text>`;
  out += `<text x="4" y="${H - B}" font-size="10">0</text><text x="4" y="20" font-size="10">${yMax.toFixed(0)} ${esc(unit)}</text>`;
  out += `<text x="${W - 60}" y="${H - 6}" font-size="10">${tMax.toFixed(0)} s</text>`;
  return `${out}</svg>`;
}

function table(rows: [string, ...unknown[]][], head: string[]): string {
  const cell = (v: unknown) => esc(v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r.map((c) => `<td>${cell(c)}</td>`).join('')}</tr>`).join('')}</table>`;
}

export function writeReport(file: string, data: { options: Record<string, unknown>; summary: Record<string, unknown>; runs: ReportRun[] }): void {
  const get = (r: ReportRun, k: string) => r.result[k] as Record<string, unknown> | null;
  const rows: [string, ...unknown[]][] = data.runs.map((r) => [
    r.name, `${String(r.result.calls_ok)}/${String(r.result.calls_started)}`, r.result.frames_sent, r.result.frames_lost,
    r.result.added_latency_ms.p50, r.result.added_latency_ms.p99, (get(r, 'segment_latency_ms') ?? {}).p99,
    get(r, 'gateway')?.cpu_ms_per_stream_s, get(r, 'gateway')?.rss_bytes_per_stream, get(r, 'workers')?.cpu_ms_per_stream_s, get(r, 'nats')?.cpu_ms_per_stream_s,
    get(r, 'generator')?.cpu_pct, r.result.machine_cpu_pct,
  ]);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>callscribe capacity run</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}pre{background:#f8f8f8;padding:8px;overflow:auto;font-size:12px}</style></head><body>
<h1>callscribe capacity run</h1>
<p>${esc(JSON.stringify(data.options))}; engine: the sink engine (<code>asr-worker --engine null</code>, no recognition); machine: ${esc(JSON.stringify(data.summary.machine))}</p>
<h2>Summary</h2>
${table(rows, ['target', 'calls ok', 'frames sent', 'frames lost', 'added p50 ms', 'added p99 ms', 'final segment p99 ms', 'gateway CPU ms/stream-s', 'gateway RSS B/stream', 'worker CPU ms/stream-s', 'nats CPU ms/stream-s', 'generator CPU %', 'machine CPU %'])}
<h2>Latency the gateway adds (client send to worker arrival)</h2>
${histogramSvg('added latency', data.runs.map((r) => ({ name: r.name, sorted: r.added })))}
<h2>Segment latency (client send of the audio that completed a segment to its arrival back)</h2>
${histogramSvg('final segments', data.runs.map((r) => ({ name: r.name, sorted: r.final })))}
${histogramSvg('partial segments', data.runs.map((r) => ({ name: r.name, sorted: r.partial })))}
<h2>CPU and memory over time</h2>
${data.runs.map((r) => `<h3>${esc(r.name)}</h3>${lineSvg('CPU % of one core', '%', r.series.map((s) => ({ name: s.name, t: s.t, y: s.cpuPct })))}${lineSvg('RSS', 'MiB', r.series.map((s) => ({ name: s.name, t: s.t, y: s.rssMiB })))}`).join('\n')}
<h2>Everything measured</h2><pre>${esc(JSON.stringify(data.summary, null, 2))}</pre>
</body></html>`;
  fs.writeFileSync(file, html);
}
