import { describe, expect, it } from "vitest";
import {
  count,
  fraction,
  optionalNumber,
  parseAssignments,
  parseChoice,
  parseList,
  parseNumber,
  parseNumberList,
  positiveInt,
  seconds,
} from "../../toolchain/args.js";
import { UsageError } from "../../toolchain/errors.js";

describe("toolchain/args: checked flag values", () => {
  it("accepts numbers within the rule", () => {
    expect(parseNumber("2.5", "--lr")).toBe(2.5);
    expect(positiveInt("3", "--epochs")).toBe(3);
    expect(count("0", "--limit")).toBe(0);
    expect(fraction("1", "--val")).toBe(1);
    expect(optionalNumber(undefined, "--x")).toBeUndefined();
    expect(seconds("1.5", "--timeout")).toBe(1500);
  });

  it.each([
    [() => parseNumber("", "--lr"), '--lr expects a number, got ""'],
    [() => parseNumber("2x", "--lr"), '--lr expects a number, got "2x"'],
    [() => positiveInt("0", "--epochs"), '--epochs expects a whole number ≥ 1, got "0"'],
    [() => positiveInt("1.5", "--epochs"), '--epochs expects a whole number ≥ 1, got "1.5"'],
    [() => count("-1", "--limit"), '--limit expects a whole number ≥ 0, got "-1"'],
    [() => fraction("1.2", "--val"), '--val expects a number ≥ 0 and ≤ 1, got "1.2"'],
    [() => seconds("0", "--timeout"), '--timeout expects a number > 0, got "0"'],
    [() => parseNumber("Infinity", "--lr"), '--lr expects a number, got "Infinity"'],
  ])("refuses bad values with a message naming the flag (%#)", (f, msg) => {
    expect(f).toThrow(UsageError);
    expect(f).toThrow(msg);
  });

  it("parses lists, number lists, assignments and choices", () => {
    expect(parseList("a, b,,c", "--keep-float")).toEqual(["a", "b", "c"]);
    expect(parseList(["a,b", "c"], "--keep-float")).toEqual(["a", "b", "c"]);
    expect(parseList(undefined, "--keep-float")).toEqual([]);
    expect(parseNumberList("0.5,0.25", "--drops", { min: 0 })).toEqual([0.5, 0.25]);
    expect(() => parseNumberList("0.5,x", "--drops")).toThrow('--drops expects a number, got "x"');
    expect(parseAssignments("conv1=4, fc=8", "--bits", { integer: true, min: 2, max: 8 })).toEqual({
      conv1: 4,
      fc: 8,
    });
    expect(() => parseAssignments("conv1", "--bits")).toThrow("--bits expects name=value pairs");
    expect(() => parseAssignments("conv1=9", "--bits", { integer: true, max: 8 })).toThrow(
      '--bits conv1 expects a whole number ≤ 8, got "9"',
    );
    expect(parseChoice("nchw", "--layout", ["nchw", "nhwc"] as const)).toBe("nchw");
    expect(() => parseChoice("hwc", "--layout", ["nchw", "nhwc"])).toThrow(
      '--layout expects one of nchw, nhwc, got "hwc"',
    );
  });
});
