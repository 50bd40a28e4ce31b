/** The device flags the device commands share: --device / --all, and the flags only TensorRT takes. */
import { describe, expect, it } from "vitest";
import { deviceSelection, tensorRtOnly } from "../../toolchain/device-flags.js";
import { UsageError } from "../../toolchain/errors.js";

describe("deviceSelection", () => {
  it("names, every registered device, or the default", () => {
    expect(deviceSelection("pi, jetson,", false)).toEqual(["pi", "jetson"]);
    expect(deviceSelection(undefined, true)).toBe("all");
    expect(deviceSelection(undefined, false)).toBeUndefined();
  });

  it("refuses --device with --all, and a list with no names (exit 2)", () => {
    expect(() => deviceSelection("pi", true)).toThrow(new UsageError("give --device or --all, not both"));
    expect(() => deviceSelection(" , ", false)).toThrow(UsageError);
    expect(() => deviceSelection(" , ", false)).toThrow("--device: give device names or URIs");
  });
});

describe("tensorRtOnly", () => {
  it("names the flags that apply to --runtime tensorrt when another runtime is given", () => {
    const given = { "--trtexec": true, "--batch": false };
    expect(() => tensorRtOnly("onnxruntime", given)).toThrow(
      new UsageError("--trtexec and --batch apply to --runtime tensorrt"),
    );
    expect(() => tensorRtOnly("tensorrt", given)).not.toThrow();
    expect(() => tensorRtOnly("onnxruntime", { "--trtexec": false, "--batch": false })).not.toThrow();
  });
});
