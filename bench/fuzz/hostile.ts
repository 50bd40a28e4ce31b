/**
 * Hostile fragments: hand-written graph fields aimed at the decoder's limits — huge element claims, attributes whose
 * type and fields disagree, odd value types, external data leaving the model's folder, deep nesting, huge repeated
 * counts, int64 values at the limits.
 */
import { concat, ff, ld, varint, vf } from "./protobuf.js";
import { int, logInt, pick, type Rand } from "./random.js";

const FLOAT = 1;
const tensorBytes = (name: string, dims: (number | bigint)[], dtype: number, payload: number[]): Uint8Array =>
  concat([...dims.map((d) => vf(1, d)), vf(2, dtype), ld(8, name), payload]);

/** A node `op` whose attribute `name` holds a graph holding a node ... `depth` levels deep. */
function nestedGraphs(depth: number): Uint8Array {
  let g: Uint8Array = ld(2, "leaf");
  for (let i = 0; i < depth; i++) {
    const attr = ld(5, ld(1, "then_branch"), vf(20, 5), ld(6, g));
    const node = ld(1, ld(1, "c"), ld(2, `y${i}`), ld(4, "If"), attr);
    g = concat([node, ld(2, `g${i}`)]);
  }
  return g; // graph body: node + name
}

/** A TypeProto of sequences nested `depth` deep around a float tensor type. */
function nestedType(depth: number): Uint8Array {
  let t: Uint8Array = ld(1, vf(1, FLOAT));
  for (let i = 0; i < depth; i++) t = ld(4, ld(1, t));
  return t;
}

export const HUGE = [2n ** 31n, 2n ** 32n - 1n, 2n ** 40n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];

export function hostile(r: Rand): Uint8Array {
  switch (int(r, 12)) {
    case 0: // dims claiming 2^40 elements (or more), with a few bytes of data
      return ld(
        5,
        tensorBytes(
          "big",
          pick(r, [[2 ** 20, 2 ** 20], [2 ** 40], [2 ** 30, 2 ** 30, 2 ** 30], [-1, 4], [2n ** 62n, 4]]),
          FLOAT,
          [...ld(9, [0, 0, 128, 63])],
        ),
      );
    case 1: {
      // attribute whose type says one thing and whose fields say another
      const attr = pick(r, [
        concat([ld(1, "a"), vf(20, 4)]), // TENSOR without t
        concat([ld(1, "a"), vf(20, 5)]), // GRAPH without g
        concat([ld(1, "a"), vf(20, 99)]), // unknown type
        concat([ld(1, "a"), vf(20, 7), ff(2, 1.5)]), // INTS with f
        concat([ld(1, "a"), vf(20, 1), ld(10, ld(2, "x"))]), // FLOAT with tensors
        concat([ld(1, "a")]), // nothing at all
        concat([vf(20, 2), vf(3, 5)]), // no name
        concat([ld(1, "__proto__"), vf(20, 2), vf(3, 1)]),
        concat([ld(1, "a"), vf(20, 11)]), // SPARSE_TENSOR without value
        concat([ld(1, "a"), vf(20, 4), ld(5, vf(2, 200))]), // tensor with unknown dtype
      ]);
      return ld(1, ld(1, "x"), ld(2, "y"), ld(4, "Relu"), ld(5, attr), ld(5, attr));
    }
    case 2: // initializer with an invalid data type or location
      return ld(
        5,
        tensorBytes("t", [2], pick(r, [0, 24, 99, 255, 2 ** 31 - 1]), []),
        vf(14, pick(r, [1, 2, 7])),
      );
    case 3: // value infos of odd types
      return ld(
        13,
        ld(1, "v"),
        ld(
          2,
          pick(r, [
            new Uint8Array(),
            ld(1, vf(1, 999)),
            ld(1, vf(1, 0)),
            ld(5, vf(1, 7)),
            ld(9, new Uint8Array()),
            ld(8, vf(1, 1)),
            ld(1, vf(1, 1), ld(2, ld(1, vf(1, 3), ld(2, "n")))),
            ld(1, vf(1, 1), ld(2, ld(1, vf(1, -5)))),
            ld(1, vf(1, 1), ld(2, ld(1, vf(1, 2 ** 62)))),
          ]),
        ),
      );
    case 4: // external data with hostile locations, without or with a model path
      return ld(
        5,
        tensorBytes("ext", [2], FLOAT, []),
        vf(14, 1),
        ld(
          13,
          ld(1, "location"),
          ld(2, pick(r, ["../../../etc/passwd", "/etc/passwd", "", "nope.bin", "SOURCES.md", ".", ".."])),
        ),
        ld(
          13,
          ld(1, pick(r, ["offset", "length"])),
          ld(2, pick(r, ["-1", "1e3", "99999999999", "0x10", "4"])),
        ),
      );
    case 5: // a known field with the wrong wire type (graph name as a varint, node as a fixed32)
      return concat([vf(2, 5), [...varint(1 * 8 + 5), 1, 2, 3, 4]]);
    case 6: // deep subgraph nesting
      return ld(
        1,
        ld(1, "c"),
        ld(2, "deep"),
        ld(4, "If"),
        ld(5, ld(1, "then_branch"), vf(20, 5), ld(6, nestedGraphs(logInt(r, 2, 3000)))),
      );
    case 7: // deep TypeProto nesting
      return ld(11, ld(1, "seq"), ld(2, nestedType(logInt(r, 2, 20000))));
    case 8: {
      // huge repeated counts: empty nodes, inputs, or one packed run of dims
      const n = logInt(r, 1000, 400000);
      const unit = pick(r, [ld(1), ld(11, ld(1, "i")), ld(5, ld(1, "x"))]);
      return concat(Array.from({ length: n }, () => unit));
    }
    case 9: {
      // a packed dims run of 1s and an element claim that does not match
      const n = logInt(r, 1000, 1000000);
      return ld(5, ld(1, new Uint8Array(n).fill(1)), vf(2, FLOAT), ld(8, "packed"), ld(9, [0, 0, 0, 0]));
    }
    case 10: // huge attribute lists
      return ld(
        1,
        ld(4, "Relu"),
        ld(5, ld(1, "ints"), vf(20, 7), ld(8, new Uint8Array(logInt(r, 1000, 1000000)).fill(3))),
      );
    default: // an int64 attribute at the limits
      return ld(1, ld(4, "Relu"), ld(5, ld(1, "i"), vf(20, 2), vf(3, pick(r, HUGE))));
  }
}
