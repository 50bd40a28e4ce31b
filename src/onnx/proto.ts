/**
 * The ONNX schema compiled with protobufjs, and the small helpers every reader of its decoded messages needs: field
 * presence, int64 fields as numbers, bytes as UTF-8, and keys from a file set without touching a prototype.
 */
import Long from "long";
import protobuf from "protobufjs";
import { ONNX_PROTO } from "./schema.js";

// int64 fields decode as Long (not lossy doubles); `num` turns them into numbers where they are exact
protobuf.util.Long = Long;
protobuf.configure();
export const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
export const ModelProto = root.lookupType("onnx.ModelProto");
export const AttrType = root.lookupEnum("onnx.AttributeProto.AttributeType").values;
export const ATTR_NAME = Object.fromEntries(Object.entries(AttrType).map(([k, v]) => [v, k.toLowerCase()]));
export const DATA_LOCATION = root.lookupEnum("onnx.TensorProto.DataLocation").values;

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages are untyped
export type Msg = any;

export const has = (m: Msg, k: string): boolean => m != null && Object.hasOwn(m, k);
export const num = (v: unknown): number => (Long.isLong(v) ? (v as Long).toNumber() : Number(v ?? 0));
const utf8 = new TextDecoder();
export const str = (b: Uint8Array): string => utf8.decode(b);

/** Set a key as an own data property: a name such as "__proto__" from a file must not reach the prototype. */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
