/**
 * Protobuf bytes by hand, schema-less: writing fields (so hostile fragments can say what protobufjs's own encoder
 * refuses to write) and finding every field of a model, nested ones included, so mutations can aim at tags and
 * lengths rather than at weight values.
 */

export function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? b | 0x80 : b);
  } while (x);
  return out;
}

export const concat = (parts: ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const enc = new TextEncoder();
/** A length-delimited field. */
export const ld = (id: number, ...payload: (Uint8Array | number[] | string)[]): Uint8Array => {
  const body = concat(payload.map((p) => (typeof p === "string" ? enc.encode(p) : p)));
  return concat([varint(id * 8 + 2), varint(body.length), body]);
};
/** A varint field. */
export const vf = (id: number, v: number | bigint): number[] => [...varint(id * 8), ...varint(v)];
/** A 32-bit float field. */
export const ff = (id: number, v: number): number[] => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...varint(id * 8 + 5), ...b];
};

/** Top-level fields of a message (schema-less): [tag offset, field id, wire type, data start, data end]. */
export interface Span {
  at: number;
  id: number;
  wire: number;
  start: number;
  end: number;
  lenAt: number;
}

function readVarint(b: Uint8Array, pos: number): [number, number] | undefined {
  let v = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos < b.length; i++) {
    const x = b[pos++]!;
    v += (x & 0x7f) * scale;
    scale *= 128;
    if (x < 0x80) return [v, pos];
  }
  return undefined;
}

/** Parse a message's fields; undefined when the bytes are not a clean message. */
export function fields(b: Uint8Array, from = 0, to = b.length): Span[] | undefined {
  const out: Span[] = [];
  let pos = from;
  while (pos < to) {
    const tag = readVarint(b, pos);
    if (!tag) return undefined;
    const [t, p] = tag;
    const id = Math.floor(t / 8);
    const wire = t % 8;
    if (id === 0) return undefined;
    if (wire === 0) {
      const v = readVarint(b, p);
      if (!v) return undefined;
      out.push({ at: pos, id, wire, start: p, end: v[1], lenAt: p });
      pos = v[1];
    } else if (wire === 1 || wire === 5) {
      const end = p + (wire === 1 ? 8 : 4);
      if (end > to) return undefined;
      out.push({ at: pos, id, wire, start: p, end, lenAt: p });
      pos = end;
    } else if (wire === 2) {
      const l = readVarint(b, p);
      if (!l || l[1] + l[0] > to) return undefined;
      out.push({ at: pos, id, wire, start: l[1], end: l[1] + l[0], lenAt: p });
      pos = l[1] + l[0];
    } else return undefined;
  }
  return out;
}

/** Every field of every nested message that parses as one (length-delimited fields are tried as messages). */
function allSpans(b: Uint8Array, limit = 20000): Span[] {
  const out: Span[] = [];
  const todo: [number, number][] = [[0, b.length]];
  while (todo.length && out.length < limit) {
    const [from, to] = todo.pop()!;
    const fs = fields(b, from, to);
    if (!fs) continue;
    for (const f of fs) {
      out.push(f);
      if (f.wire === 2 && f.end - f.start >= 2) todo.push([f.start, f.end]);
    }
  }
  return out;
}

const spanCache = new WeakMap<Uint8Array, Span[]>();
export function spansOf(b: Uint8Array): Span[] {
  let s = spanCache.get(b);
  if (!s) {
    s = allSpans(b);
    spanCache.set(b, s);
  }
  return s;
}

/** Replace bytes [from, to) with `middle`. */
export const splice = (b: Uint8Array, from: number, to: number, middle: ArrayLike<number>): Uint8Array =>
  concat([b.subarray(0, from), middle, b.subarray(to)]);

/** Add fields to the model's graph (field 7), rewriting its length prefix. */
export function injectIntoGraph(b: Uint8Array, extra: Uint8Array, atStart = false): Uint8Array {
  const top = fields(b);
  const g = top?.find((f) => f.id === 7 && f.wire === 2);
  if (!g) return concat([b, ld(7, extra)]);
  const body = atStart
    ? concat([extra, b.subarray(g.start, g.end)])
    : concat([b.subarray(g.start, g.end), extra]);
  return splice(b, g.at, g.end, ld(7, body));
}
