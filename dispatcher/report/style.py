"""The report's stylesheet, inlined into the page (a Python string rather than a .css
file: no package data to declare, and the page stays one file)."""

CSS = """
:root { --ink:#202124; --soft:#5f6368; --line:#e3e5e8; --bg:#f6f7f9; --card:#fff;
  --ok:#2e9d5b; --bad:#d64541; --warn:#b26a00; --grey:#9aa0a6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1080px; margin:0 auto; padding:28px 24px 40px; }
header { margin-bottom:18px; }
.eyebrow { margin:0; color:var(--soft); text-transform:uppercase; letter-spacing:.08em;
  font-size:11px; font-weight:600; }
h1 { margin:4px 0 6px; font-size:26px; font-weight:650; overflow-wrap:anywhere; }
h2 { margin:0 0 12px; font-size:17px; font-weight:650; }
h3 { margin:16px 0 8px; font-size:14px; font-weight:600; color:var(--soft); }
.sub { margin:2px 0; color:var(--soft); overflow-wrap:anywhere; }
code { font:12.5px/1.3 ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;
  overflow-wrap:anywhere; }
.badge { display:inline-block; vertical-align:middle; margin-left:6px; padding:2px 9px;
  border-radius:999px; font-size:12px; font-weight:600; }
.badge.ok { background:#e6f4ea; color:#137333; } .badge.bad { background:#fce8e6; color:#a50e0e; }
.badge.warn { background:#fef7e0; color:#8a5300; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:18px 20px; margin:14px 0; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:10px;
  background:none; border:0; padding:0; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px;
  border-top:3px solid var(--line); }
.kpi.ok { border-top-color:var(--ok); } .kpi.bad { border-top-color:var(--bad); }
.kpi.muted { border-top-color:var(--grey); }
.kpi .label { color:var(--soft); font-size:12px; font-weight:600; }
.kpi .value { font-size:22px; font-weight:650; margin:2px 0; font-variant-numeric:tabular-nums; }
.kpi .note { color:var(--soft); font-size:12px; }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th { text-align:left; font-size:12px; color:var(--soft); font-weight:600;
  border-bottom:1px solid var(--line); padding:6px 8px; }
td { padding:6px 8px; border-bottom:1px solid #f0f1f3; vertical-align:top; }
tfoot td { border-top:1px solid var(--line); border-bottom:0; font-weight:600; }
.num { text-align:right; white-space:nowrap; }
.muted { color:var(--soft); }
.pct { display:block; color:var(--soft); font-size:11px; }
.barcell { width:28%; vertical-align:middle; }
.bar { height:10px; border-radius:3px; min-width:2px; }
.bar.sent, .dot.sent { background:var(--ok); } .bar.failed, .dot.failed { background:var(--bad); }
.bar.skipped, .dot.skipped { background:var(--grey); }
.dot { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:7px; }
.scroll { overflow-x:auto; }
.reason { overflow-wrap:anywhere; max-width:420px; }
.samples code { display:inline-block; margin:0 6px 2px 0; color:var(--soft); }
.reasons td:first-child { white-space:nowrap; }
.reasons.failed td:first-child code { color:var(--bad); }
tr.more td { color:var(--soft); font-style:italic; }
figure.chart { margin:0 0 18px; }
figure.chart h3 { margin:6px 0 4px; color:var(--ink); }
figure.chart svg { display:block; width:100%; height:auto; }
figcaption { color:var(--soft); font-size:12px; margin-top:2px; }
.legend { display:flex; flex-wrap:wrap; gap:4px 18px; margin:2px 0 4px 56px; font-size:12.5px; }
.key { display:inline-flex; align-items:center; gap:6px; white-space:nowrap; }
.empty { color:var(--soft); font-style:italic; margin:4px 0; }
.note { color:var(--warn); }
.two { display:grid; grid-template-columns:1fr 1fr; gap:24px; }
@media (max-width:760px) { .two { grid-template-columns:1fr; } }
dl { display:grid; grid-template-columns:max-content 1fr; gap:5px 14px; margin:0; }
dt { color:var(--soft); } dd { margin:0; overflow-wrap:anywhere; }
.notes ul { margin:0; padding-left:18px; color:var(--soft); }
footer { color:var(--soft); font-size:12px; text-align:center; margin-top:20px; }
@media print { body { background:#fff; } section, .kpi { break-inside:avoid; } }
"""
