/**
 * validateOnDevices (what `qat validate` runs) refuses bad input before it connects to anything or loads data:
 * an empty registry with every device asked for, a --save folder that is not there, a model it cannot read.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DeviceError } from "../../devices/errors.js";
import { validateOnDevices } from "../../devices/validate.js";

const dir = mkdtempSync(join(tmpdir(), "qat-validate-input-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const base = { data: "mnist", registry: join(dir, "devices.json"), devices: ["local"] };

async function refusal(p: Promise<unknown>): Promise<DeviceError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DeviceError);
  expect((e as DeviceError).exitCode).toBe(2);
  return e as DeviceError;
}

describe("validateOnDevices: input it refuses (exit 2)", () => {
  it("every device of an empty registry", async () => {
    const e = await refusal(validateOnDevices({ ...base, model: "m.onnx", devices: "all" }));
    expect(e.message).toBe("--all: no devices are registered (see `qat device add`)");
  });

  it("a --save folder that does not exist, named", async () => {
    const save = join(dir, "nope", "r.json");
    const e = await refusal(validateOnDevices({ ...base, model: "m.onnx", save }));
    expect(e.message).toBe(`--save ${save}: the folder ${join(dir, "nope")} does not exist`);
  });

  it("a model file that cannot be read, named", async () => {
    const model = join(dir, "missing.onnx");
    const e = await refusal(validateOnDevices({ ...base, model }));
    expect(e.message).toMatch(new RegExp(`^cannot read ${model}: ENOENT`));
  });
});
