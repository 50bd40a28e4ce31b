/**
 * The one place flag values are turned into numbers and lists. Every command uses these instead of `Number()`, so
 * "--epochs 2x" or "--limit -1" is a usage error (exit 2) naming the flag and the value, never a NaN that travels.
 */
import { UsageError } from "./errors.js";

export interface NumberRule {
  /** Whole numbers only. */
  integer?: boolean;
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
  /** Smallest allowed value, exclusive (e.g. 0 for "positive"). */
  above?: number;
}

function describe(rule: NumberRule): string {
  const kind = rule.integer ? "a whole number" : "a number";
  const parts: string[] = [];
  if (rule.above !== undefined) parts.push(`> ${rule.above}`);
  if (rule.min !== undefined) parts.push(`≥ ${rule.min}`);
  if (rule.max !== undefined) parts.push(`≤ ${rule.max}`);
  return parts.length ? `${kind} ${parts.join(" and ")}` : kind;
}

/** A flag's value as a number that obeys `rule`, or a UsageError naming the flag and what it expects. */
export function parseNumber(value: string | number, flag: string, rule: NumberRule = {}): number {
  const text = String(value).trim();
  const n = Number(text);
  const ok =
    text !== "" &&
    Number.isFinite(n) &&
    (!rule.integer || Number.isInteger(n)) &&
    (rule.min === undefined || n >= rule.min) &&
    (rule.max === undefined || n <= rule.max) &&
    (rule.above === undefined || n > rule.above);
  if (!ok) throw new UsageError(`${flag} expects ${describe(rule)}, got "${value}"`);
  return n;
}

/** As parseNumber, but an absent flag stays undefined. */
export function optionalNumber(
  value: string | number | undefined,
  flag: string,
  rule: NumberRule = {},
): number | undefined {
  return value === undefined ? undefined : parseNumber(value, flag, rule);
}

/** Common rules, named for what the flag means. */
export const count = (v: string | number, flag: string): number =>
  parseNumber(v, flag, { integer: true, min: 0 });
export const positiveInt = (v: string | number, flag: string): number =>
  parseNumber(v, flag, { integer: true, min: 1 });
export const fraction = (v: string | number, flag: string): number =>
  parseNumber(v, flag, { min: 0, max: 1 });
export const positive = (v: string | number, flag: string): number => parseNumber(v, flag, { above: 0 });

/** Seconds given on the command line, in milliseconds (undefined when the flag is absent). */
export function seconds(value: string | undefined, flag: string): number | undefined {
  const s = optionalNumber(value, flag, { above: 0 });
  return s === undefined ? undefined : Math.round(s * 1000);
}

/** A comma-separated list ("a,b, c"), empty items dropped; each item checked by `item` when given. */
export function parseList<T = string>(
  value: string | readonly string[] | undefined,
  flag: string,
  item?: (v: string, flag: string) => T,
): T[] {
  if (value === undefined) return [];
  const raw = (typeof value === "string" ? [value] : value).flatMap((v) => v.split(","));
  const items = raw.map((v) => v.trim()).filter((v) => v !== "");
  return items.map((v) => (item ? item(v, flag) : (v as T)));
}

/** A list of numbers ("0.5,0.25"), each checked by `rule`. */
export function parseNumberList(value: string | undefined, flag: string, rule: NumberRule = {}): number[] {
  return parseList(value, flag, (v) => parseNumber(v, flag, rule));
}

/** "name=value" pairs ("conv1=4,fc=8") as a record, each value checked by `rule`. */
export function parseAssignments(
  value: string | undefined,
  flag: string,
  rule: NumberRule = {},
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of parseList(value, flag)) {
    const m = /^([^=]+)=(.+)$/.exec(pair);
    if (!m) throw new UsageError(`${flag} expects name=value pairs separated by commas, got "${pair}"`);
    out[m[1]!.trim()] = parseNumber(m[2]!, `${flag} ${m[1]!.trim()}`, rule);
  }
  return out;
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value))
    throw new UsageError(`${flag} expects one of ${choices.join(", ")}, got "${value}"`);
  return value as T;
}
