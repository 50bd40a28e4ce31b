import { getHeapStatistics } from "node:v8";
import protobuf from "protobufjs";
import { OnnxError } from "./errors.js";

/**
 * A check of the protobuf wire format against the schema, run before protobufjs decodes a file. protobufjs trusts
 * its input: a wrong wire type on a known field, a packed run cut mid-element or a length prefix past the end of
 * the enclosing message make it read garbage or throw a bare RangeError, and nesting thousands of messages deep
 * overflows its recursive decoder. This walk is iterative and linear in the file size; it stops at the first
 * problem with the byte offset and the path of the field (`graph.node[3].attribute[0].t`), and it estimates the
 * heap the decoded objects will take so a file of a million empty messages is refused instead of exhausting memory.
 */

/**
 * Deepest message nesting accepted: protobuf's default recursion limit (protoc's and protobufjs's), so what we
 * accept every ONNX tool reads. A subgraph costs three levels (node, attribute, graph).
 */
export const MAX_MESSAGE_DEPTH = 100;

/** Rough heap cost (bytes) of what protobufjs builds: per message, per repeated field, per 64-bit value. */
const COST_MESSAGE = 96;
const COST_REPEATED = 32;
const COST_LONG = 64; // measured: ~59 bytes per decoded int64 (a Long), ~194 per empty NodeProto, ~10 per float
const COST_NUMBER = 8;
const COST_BYTES = 96;

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

const FIXED32_TYPES = new Set(["float", "fixed32", "sfixed32"]);
const FIXED64_TYPES = new Set(["double", "fixed64", "sfixed64"]);
const LONG_TYPES = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);

interface FieldPlan {
  name: string;
  repeated: boolean;
  /** The sub-message type for message fields. */
  message?: Plan;
  /** Wire type of one element. */
  wire: number;
  /** Repeated scalar numbers may also come packed (wire type 2). */
  packable: boolean;
  /** Heap cost of one decoded scalar element. */
  cost: number;
  /** Strings are copied onto the heap; bytes fields stay views of the file. */
  perByte: number;
}

interface Plan {
  fields: Map<number, FieldPlan>;
  /** Heap cost of a decoded empty message of this type (its repeated fields are fresh arrays). */
  cost: number;
}

const plans = new Map<protobuf.Type, Plan>();

function planOf(type: protobuf.Type): Plan {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = { fields: new Map(), cost: COST_MESSAGE };
  plans.set(type, plan); // before the fields: the schema is recursive
  for (const f of type.fieldsArray) {
    f.resolve();
    if (f.repeated) plan.cost += COST_REPEATED;
    const sub = f.resolvedType instanceof protobuf.Type ? planOf(f.resolvedType) : undefined;
    const scalarWire =
      f.resolvedType instanceof protobuf.Enum
        ? VARINT
        : FIXED32_TYPES.has(f.type)
          ? FIXED32
          : FIXED64_TYPES.has(f.type)
            ? FIXED64
            : f.type === "string" || f.type === "bytes"
              ? LEN
              : VARINT;
    plan.fields.set(f.id, {
      name: f.name,
      repeated: f.repeated,
      message: sub,
      wire: sub ? LEN : scalarWire,
      packable: !sub && f.repeated && scalarWire !== LEN,
      cost: sub ? 0 : scalarWire === LEN ? COST_BYTES : LONG_TYPES.has(f.type) ? COST_LONG : COST_NUMBER,
      perByte: f.type === "string" ? 2 : 0,
    });
  }
  return plan;
}

interface Frame {
  plan: Plan;
  end: number;
  path: string;
  depth: number;
  /** How many of each repeated message field were seen, for paths like node[3]; made on first use. */
  counts?: Map<number, number>;
}

const WIRE_NAME = [
  "varint",
  "64-bit",
  "length-delimited",
  "group start",
  "group end",
  "32-bit",
  "invalid",
  "invalid",
];

/** A field path for messages, shortened in the middle when nesting is deep. */
function shortPath(path: string): string {
  const parts = path.split(".");
  if (parts.length <= 12) return path;
  return [...parts.slice(0, 5), `…${parts.length - 10} levels…`, ...parts.slice(-5)].join(".");
}

/** The exact value of the varint at `pos` (lengths beyond 2^53 are printed exactly). */
function exactVarint(bytes: Uint8Array, pos: number): bigint {
  let v = 0n;
  for (let i = 0; i < 10 && pos + i < bytes.length; i++) {
    const b = bytes[pos + i]!;
    v |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) break;
  }
  return v;
}

/** Validate `bytes` as a `type` message; throws OnnxError naming the byte offset and field path. */
export function checkWire(
  bytes: Uint8Array,
  type: protobuf.Type,
  file?: string,
  heapLimit = defaultHeapLimit(),
): void {
  const total = bytes.length;
  let pos = 0;
  let budget = 0;
  const fail = (offset: number, path: string, msg: string): never => {
    throw new OnnxError(`${path ? `field ${shortPath(path)}: ` : ""}${msg}`, { file, offset });
  };
  const stack: Frame[] = [];
  let frame: Frame = { plan: planOf(type), end: total, path: "", depth: 0 };
  budget += frame.plan.cost;

  const varint = (end: number, path: string, what: string): number => {
    const start = pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) fail(start, path, `${what} is cut off (the data ends at byte ${end})`);
      const b = bytes[pos++]!;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return value;
    }
    return fail(start, path, `${what} is a varint longer than 10 bytes`);
  };

  for (;;) {
    while (pos >= frame.end) {
      const up = stack.pop();
      if (!up) return;
      frame = up;
    }
    const tagAt = pos;
    const tag = varint(frame.end, frame.path, "a field tag");
    const id = Math.floor(tag / 8);
    const wire = tag % 8;
    const field = frame.plan.fields.get(id);
    const name = field ? (frame.path ? `${frame.path}.${field.name}` : field.name) : frame.path;
    if (id === 0 || id > 536870911)
      fail(tagAt, frame.path, `invalid field number ${exactVarint(bytes, tagAt) >> 3n}`);
    if (field && wire !== field.wire && !(field.packable && wire === LEN)) {
      fail(
        tagAt,
        name,
        `has wire type ${wire} (${WIRE_NAME[wire]}), the schema says ${WIRE_NAME[field.wire]}`,
      );
    }
    switch (wire) {
      case VARINT:
        varint(frame.end, name, "a varint");
        break;
      case FIXED64:
      case FIXED32: {
        const size = wire === FIXED64 ? 8 : 4;
        if (pos + size > frame.end) fail(tagAt, name, `${size}-byte value runs past byte ${frame.end}`);
        pos += size;
        break;
      }
      case LEN: {
        const lenAt = pos;
        const len = varint(frame.end, name, "a length prefix");
        if (pos + len > frame.end) {
          const enclosing = frame.end === total ? "the end of the data" : "the end of the enclosing message";
          fail(tagAt, name, `length ${exactVarint(bytes, lenAt)} runs past ${enclosing} (byte ${frame.end})`);
        }
        if (field?.message) {
          if (frame.depth + 1 > MAX_MESSAGE_DEPTH) {
            fail(tagAt, name, `messages nested deeper than ${MAX_MESSAGE_DEPTH} levels`);
          }
          let path = name;
          if (field.repeated) {
            frame.counts ??= new Map();
            const index = frame.counts.get(id) ?? 0;
            frame.counts.set(id, index + 1);
            path = `${name}[${index}]`;
          }
          stack.push(frame);
          frame = { plan: field.message, end: pos + len, path, depth: frame.depth + 1 };
          budget += frame.plan.cost;
          if (budget > heapLimit) tooBig(tagAt, name);
          continue; // pos stays at the start of the sub-message
        }
        if (field?.packable) budget += packedCount(bytes, pos, len, field, tagAt, name, fail) * field.cost;
        else if (field) budget += field.cost + field.perByte * len;
        pos += len;
        break;
      }
      default:
        fail(
          tagAt,
          name,
          wire < 6 ? `has a protobuf group (wire type ${wire}); ONNX uses none` : `invalid wire type ${wire}`,
        );
    }
    if (field && wire !== LEN) budget += field.cost;
    if (budget > heapLimit) tooBig(tagAt, name);
  }

  function tooBig(offset: number, path: string): never {
    return fail(
      offset,
      path,
      `decoding would need more than ${Math.round(heapLimit / 2 ** 20)} MB of heap; refusing`,
    );
  }
}

function packedCount(
  bytes: Uint8Array,
  start: number,
  len: number,
  field: FieldPlan,
  tagAt: number,
  name: string,
  fail: (offset: number, path: string, msg: string) => never,
): number {
  if (field.wire === FIXED32 || field.wire === FIXED64) {
    const size = field.wire === FIXED32 ? 4 : 8;
    if (len % size !== 0)
      fail(tagAt, name, `packed ${size}-byte values: ${len} bytes is not a multiple of ${size}`);
    return len / size;
  }
  let count = 0;
  let run = 0;
  for (let i = start; i < start + len; i++) {
    if (bytes[i]! < 0x80) {
      count++;
      run = 0;
    } else if (++run >= 10) fail(i, name, "a packed varint is longer than 10 bytes");
  }
  if (run > 0) fail(tagAt, name, "the last packed varint is cut off");
  return count;
}

function defaultHeapLimit(): number {
  return getHeapStatistics().heap_size_limit / 2;
}
