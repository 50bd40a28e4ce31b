/** The report page's stylesheet (inline: the page loads nothing). */
export const STYLE = `
:root { color-scheme: light; --fg: #1d1d1f; --muted: #5f6368; --line: #e3e3e6; --bg: #fafafa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 1440px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 8px; }
h3 .sub { color: var(--muted); font-weight: normal; font-size: 13px; }
.meta { color: var(--muted); margin: 0 0 10px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-bottom: 14px; }
nav a { color: #2f5d8a; text-decoration: none; }
nav a:hover { text-decoration: underline; }
code { font: 12px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; background: #f0f0f2; padding: 1px 4px; border-radius: 3px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card .k { color: var(--muted); font-size: 12px; }
.card .v { font-size: 22px; font-weight: 600; }
.card .s { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin: 16px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; margin: 10px 0; }
figure.chart { margin: 0; padding: 8px; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
figure.chart svg { display: block; }
figcaption.title { font-weight: 600; margin: 0 0 4px 4px; }
figcaption.note { color: var(--muted); font-size: 12px; margin: 4px; max-width: 600px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; font-weight: 600; }
table.quant td:nth-child(3) { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.src { color: var(--muted); font-size: 12px; }
.na { color: #8a5a00; background: #fff7e0; border: 1px solid #f1deb0; border-radius: 6px; padding: 8px 12px; }
.warn { color: #8a5a00; font-size: 13px; }
footer { color: var(--muted); font-size: 12px; padding-bottom: 24px; }
`;
