import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = p.timeDeltas; let total = 0;
for (let i = 0; i < p.samples.length; i++) { const n = byId.get(p.samples[i]); const d = dt[i] ?? 0; total += d; self.set(n.id, (self.get(n.id) ?? 0) + d); }
// self time by function
const fn = new Map();
for (const [id, t] of self) { const n = byId.get(id); const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`; fn.set(k, (fn.get(k) ?? 0) + t); }
console.log('total ms', (total/1000).toFixed(0));
for (const [k, t] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log((t / 1000).toFixed(0).padStart(7), (100*t/total).toFixed(1).padStart(5)+'%', k);
// inclusive time for functions matching filter
const parent = new Map(); for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const incl = new Map();
for (const [id, t] of self) { const seen = new Set(); let cur = id; while (cur !== undefined) { const n = byId.get(cur); const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`; if (!seen.has(k)) { incl.set(k, (incl.get(k) ?? 0) + t); seen.add(k);} cur = parent.get(cur); } }
console.log('--- inclusive');
for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).filter(([k]) => k.includes('.ts:')).slice(0, 45)) console.log((t / 1000).toFixed(0).padStart(7), (100*t/total).toFixed(1).padStart(5)+'%', k);
