/**
 * Text widths for ECharts' server-side layout. Without a canvas, ECharts estimates text with Arial-like widths;
 * the charts are set in DejaVu Sans / Verdana (wider), so legends and labels placed with those estimates overlap.
 * These are DejaVu Sans advance widths in em (Verdana is within a few percent), rounded up.
 */
const EM: Record<string, number> = {};
const set = (chars: string, w: number) => {
  for (const c of chars) EM[c] = w;
};
set(" .,:;'|!", 0.34);
set("ijlI", 0.3);
set("ft", 0.4);
set('r()[]{}/\\-"', 0.42);
set("sczJ*_", 0.53);
set("kvxyLFTYaeo?", 0.62);
set("0123456789$#bdghnpquSPEZ", 0.65);
set("ABCKRVX&", 0.7);
set("DGHNOQU", 0.78);
set("+=<>~^−≤≥×", 0.84);
set("wM", 0.87);
set("mW%@…", 1.0);
// zrender takes a line's height from the width of "国": one em, or multi-line labels overlap
set("国", 1.0);

/** Width in pixels of `text` set in `font` (a CSS font shorthand such as "bold 12px sans-serif"). */
export function measureText(text: string, font = "12px sans-serif"): { width: number } {
  const size = Number(/(\d+(?:\.\d+)?)px/.exec(font)?.[1] ?? 12);
  const bold = /bold|[6-9]00/.test(font) ? 1.08 : 1;
  let em = 0;
  for (const c of text) em += EM[c] ?? 0.72;
  return { width: em * size * bold };
}
