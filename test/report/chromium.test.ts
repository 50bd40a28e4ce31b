/**
 * The report in a real browser: Debian's chromium, driven by playwright-core (no browser download). The page must
 * load with no console errors and no page errors, every chart must be an SVG with drawn content, and a full-page
 * screenshot is kept as artifacts/report.png.
 */
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeReport } from "../../src/report/index.js";
import { ROOT } from "../helpers/paths.js";
import { type Fixture, pipelineRun } from "./fixture.js";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SCREENSHOT = join(ROOT, "artifacts", "report.png");

let fx: Fixture;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the report's browser test needs Debian's chromium (apt-get install chromium)`,
    );
  fx = await pipelineRun();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}, 300_000);
afterAll(async () => {
  await browser?.close();
  if (fx) rmSync(fx.dir, { recursive: true, force: true });
});

interface ChartCheck {
  id: string;
  width: number;
  height: number;
  /** Drawn shapes (path, rect, circle, polyline) with a non-empty bounding box. */
  shapes: number;
  texts: number;
}

/** Open a report file; returns its console and page errors and what each chart figure holds. */
async function open(file: string, screenshot?: string): Promise<{ errors: string[]; charts: ChartCheck[] }> {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  try {
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
    const charts = await page.$$eval("figure.chart", (figs) =>
      figs.map((f) => {
        const svg = f.querySelector("svg");
        const box = svg?.getBoundingClientRect();
        const drawn = [...(svg?.querySelectorAll("path, rect, circle, polyline") ?? [])].filter((el) => {
          const b = (el as unknown as { getBBox(): { width: number; height: number } }).getBBox();
          return b.width > 0 || b.height > 0;
        });
        return {
          id: f.getAttribute("data-chart") ?? "",
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          shapes: drawn.length,
          texts: svg?.querySelectorAll("text").length ?? 0,
        };
      }),
    );
    if (screenshot) {
      mkdirSync(join(screenshot, ".."), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
    }
    return { errors, charts };
  } finally {
    await page.close();
  }
}

describe("the report in headless Chromium", () => {
  it("loads without errors, every chart is drawn; the screenshot is kept", async () => {
    const r = await writeReport(fx.run);
    const { errors, charts } = await open(r.out, SCREENSHOT);
    expect(errors).toEqual([]);
    expect(charts.map((c) => c.id)).toEqual(r.charts);
    expect(charts.length).toBe(10);
    for (const c of charts) {
      expect(c.width, c.id).toBeGreaterThan(100);
      expect(c.height, c.id).toBeGreaterThan(100);
      // background rect plus axes and marks: more than a blank frame
      expect(c.shapes, c.id).toBeGreaterThan(3);
      expect(c.texts, c.id).toBeGreaterThan(1);
    }
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(50_000);
  });

  it("a report with sections not available (a QAT run folder alone) loads without errors too", async () => {
    const out = join(fx.dir, "qat-only.html");
    const r = await writeReport(join(fx.run, "qat"), { out });
    expect(Object.keys(r.missing).sort()).toEqual(["device", "export", "sensitivity"]);
    const { errors, charts } = await open(out);
    expect(errors).toEqual([]);
    expect(charts.map((c) => c.id)).toEqual(["loss", "accuracy", "weight-scales", "ops"]);
    for (const c of charts) expect(c.shapes, c.id).toBeGreaterThan(3);
  });
});
