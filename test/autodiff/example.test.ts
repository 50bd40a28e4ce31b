import { expect, test } from "vitest";
import { main } from "../../examples/gradient-descent.js";

test("the seed example prints PyTorch's figures exactly and converges to w = 2", async () => {
  const lines = await main(() => {});
  expect(lines[0]).toBe("Gradient: 6.0");
  expect(lines[1]).toBe("Updated Weight: 4.400000095367432");
  const last = lines.at(-1)!;
  const w = Number(/w = ?([-\d.e]+)/.exec(last)?.[1]);
  expect(Math.abs(w - 2)).toBeLessThan(1e-5);
});
