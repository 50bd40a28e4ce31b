/** Human and JSON forms of library results that more than one command prints. */
import type { ParityReport } from "../src/export/parity.js";

const pct = (v: number | null, digits = 2) => (v === null ? "n/a" : `${(100 * v).toFixed(digits)}%`);

/** Human lines of a parity report. */
export function formatParity(p: ParityReport): string[] {
  const lines = [
    `parity on ${p.samples} samples (ORT config ${
      Object.entries(p.hostConfig)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ") || "defaults"
    }):`,
    `  accuracy: exported ${pct(p.exportAccuracy)}, simulation ${pct(p.simulationAccuracy)} (difference ${((p.exportAccuracy - p.simulationAccuracy) * 100).toFixed(2)} pt)`,
    `  top-1 agreement ${pct(p.agreement, 3)} (threshold ${pct(p.thresholds.agreement, 1)})`,
  ];
  for (const o of p.outputs) {
    const kind = o.step === "dequantize" ? "its DequantizeLinear's step" : "8-bit steps of its range";
    lines.push(
      `  output '${o.name}': largest difference ${o.maxAbs.toPrecision(3)} = ${o.maxSteps.toFixed(3)} steps of ${o.stepSize.toPrecision(3)} (${kind}); ` +
        `${pct(o.withinOneStep, 3)} within one step (threshold ${pct(p.thresholds.withinOneStep, 1)})`,
    );
    if (o.accumulator) {
      lines.push(
        `    in int32-accumulator steps (s_x·s_w): largest ${o.accumulator.maxSteps.toFixed(1)}, ${pct(o.accumulator.withinOneStep, 3)} within one`,
      );
    }
  }
  lines.push(p.passed ? "  passed" : `  FAILED:\n${p.failures.map((f) => `    ${f}`).join("\n")}`);
  return lines;
}

/** A parity report as the JSON field names of `--json`. */
export function parityJson(p: ParityReport): Record<string, unknown> {
  return {
    samples: p.samples,
    agreement: p.agreement,
    simulation_accuracy: p.simulationAccuracy,
    export_accuracy: p.exportAccuracy,
    outputs: p.outputs,
    thresholds: p.thresholds,
    passed: p.passed,
    failures: p.failures,
    host_config: p.hostConfig,
  };
}
