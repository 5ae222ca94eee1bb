// peephole web UI: a sortable table over whatever keys the JSON rows have
// (so columns added by the server, like country/asn, just appear).
import { useState } from "/vendor/preact-hooks.mjs";
import { html, humanBytes, localTime, cellText, ms } from "./api.js";

export function keysOf(rows, preferred = []) {
  const seen = new Set();
  const all = [];
  for (const r of rows.slice(0, 2000)) for (const k of Object.keys(r)) if (!seen.has(k)) (seen.add(k), all.push(k));
  return [...preferred.filter((k) => seen.has(k)), ...all.filter((k) => !preferred.includes(k))];
}

export function fmtCell(k, v) {
  if (v === null || v === undefined) return { text: "", title: "" };
  if (/^bytes|_bytes$|^size$/.test(k) && typeof v === "number") return { text: humanBytes(v), title: v + " bytes", num: true };
  if (/(_seen|^start|^time|_retry)$/.test(k) && typeof v === "string" && /^\d{4}-/.test(v)) return { text: localTime(v), title: v };
  if (/_ms$/.test(k) && typeof v === "number") return { text: ms(v), title: v + " ms", num: true };
  if (typeof v === "number") return { text: String(v), title: "", num: true };
  const t = cellText(v);
  return { text: t, title: t.length > 40 ? t : "" };
}

function sortVal(v) {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.length ? (typeof v[0] === "number" ? v[0] : v.join(",").toLowerCase()) : null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string") return v.toLowerCase();
  return v;
}

export function SortTable({ rows, keys, testid, titles = {}, onRow, rowClass, extra, initialSort, selectedKey, keyOf }) {
  const [sort, setSort] = useState(initialSort || { key: null, dir: 1 });
  const [cap, setCap] = useState(1000); // rows drawn; more on request
  let view = rows;
  if (sort.key) {
    const k = sort.key;
    view = rows.slice().sort((a, b) => {
      const x = sortVal(a[k]), y = sortVal(b[k]);
      if (x === y) return 0;
      if (x === null) return 1; // empty last either way
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sort.dir;
    });
  }
  const click = (k) => setSort(sort.key === k ? { key: k, dir: -sort.dir } : { key: k, dir: typeof sortVal(rows.find((r) => r[k] !== null && r[k] !== undefined)?.[k]) === "number" ? -1 : 1 });
  return html`<table class="grid sortable mono" data-testid=${testid}>
    <thead>
      <tr>
        ${extra && html`<th></th>`}
        ${keys.map(
          (k) => html`<th key=${k} data-key=${k} class=${sort.key === k ? "sorted" : ""} onClick=${() => click(k)} title="sort by ${k}">${titles[k] || k}${sort.key === k ? (sort.dir > 0 ? " ▲" : " ▼") : ""}</th>`
        )}
      </tr>
    </thead>
    <tbody>
      ${view.slice(0, cap).map((r, i) => {
        const key = keyOf ? keyOf(r) : i;
        return html`<tr key=${key} class=${(rowClass ? rowClass(r) : "") + (onRow ? " clickable" : "") + (selectedKey !== undefined && key === selectedKey ? " sel" : "")} onClick=${onRow ? () => onRow(r) : undefined}>
          ${extra && html`<td class="extra">${extra(r)}</td>`}
          ${keys.map((k) => {
            const f = fmtCell(k, r[k]);
            return html`<td class=${f.num ? "num" : ""} title=${f.title}>${f.text}</td>`;
          })}
        </tr>`;
      })}
    </tbody>
  </table>
  ${view.length > cap && html`<div class="more-rows"><button type="button" class="link" onClick=${() => setCap(cap + 5000)}>show ${Math.min(5000, view.length - cap)} more of ${view.length - cap} (sorted order)</button></div>`}`;
}
