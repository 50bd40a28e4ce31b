/** One fuzz case: a real model mutated one of KINDS ways, chosen from (seed, index) alone. */
import { join } from "node:path";
import { HUGE, hostile } from "./hostile.js";
import { type FuzzModel, SHARED_MODELS } from "./models.js";
import { injectIntoGraph, spansOf, splice, varint } from "./protobuf.js";
import { int, pick, prng } from "./random.js";

export interface FuzzCase {
  index: number;
  model: string;
  kind: string;
  bytes: Uint8Array;
  /** Set for some cases so external-data references are resolved against the model's folder. */
  path?: string;
}

export const KINDS = [
  "bitflip",
  "overwrite",
  "truncate",
  "insert",
  "delete",
  "inflate-length",
  "inflate-varint",
  "hostile",
  "splice",
] as const;

export function makeCase(models: FuzzModel[], seed: number, index: number): FuzzCase {
  const r = prng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const model = pick(r, models);
  const b = model.bytes;
  const kind = pick(r, KINDS);
  const spans = spansOf(b);
  // half the offsets land on a field's tag or length, where a change alters structure rather than weight values
  const at = () =>
    r() < 0.5 && spans.length ? pick(r, spans)[r() < 0.5 ? "at" : "lenAt"] : int(r, b.length);
  let out: Uint8Array;
  switch (kind) {
    case "bitflip": {
      out = new Uint8Array(b);
      for (let k = 1 + int(r, 8); k > 0; k--) out[at()]! ^= 1 << int(r, 8);
      break;
    }
    case "overwrite": {
      out = new Uint8Array(b);
      const start = at();
      for (let k = 0; k < 1 + int(r, 16) && start + k < out.length; k++) {
        out[start + k] = pick(r, [0, 0xff, 0x80, 0x7f, 0x0a, 0x12, int(r, 256)]);
      }
      break;
    }
    case "truncate":
      out = b.slice(0, at());
      break;
    case "insert":
      out = splice(
        b,
        at(),
        0,
        Array.from({ length: 1 + int(r, 64) }, () => int(r, 256)),
      );
      break;
    case "delete": {
      const s = at();
      out = splice(b, s, s + 1 + int(r, 64), []);
      break;
    }
    case "inflate-length":
    case "inflate-varint": {
      const wire = kind === "inflate-length" ? 2 : 0;
      const candidates = spans.filter((s) => s.wire === wire);
      if (!candidates.length) {
        out = b.slice(0, at());
        break;
      }
      const s = pick(r, candidates);
      const huge = pick(r, HUGE);
      const end = wire === 2 ? s.start : s.end; // the varint to replace is [lenAt, end)
      out = splice(b, s.lenAt, end, varint(huge));
      break;
    }
    case "hostile":
      out = injectIntoGraph(b, hostile(r), r() < 0.5);
      break;
    default: {
      const other = pick(r, models).bytes;
      const from = int(r, other.length);
      out = splice(b, at(), at(), other.subarray(from, from + 1 + int(r, 4096)));
      break;
    }
  }
  return {
    index,
    model: model.name,
    kind,
    bytes: out,
    path: r() < 0.2 ? join(SHARED_MODELS, model.name) : undefined,
  };
}
