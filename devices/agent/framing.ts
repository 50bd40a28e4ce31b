/**
 * The agent's frame codec: length-prefixed, versioned frames over any byte stream (an SSH exec channel, a child
 * process's stdin/stdout, a serial link session).
 *
 * Frame: "QAT" 0x01 | u32 BE header length | u32 BE payload length | header (UTF-8 JSON) | payload (raw bytes).
 * Bytes before a frame's magic are skipped (a login banner on the channel does not break the stream).
 *
 * Board-side code: Node built-ins only; installed beside the agent as framing.mjs.
 */

export const MAGIC = Uint8Array.of(0x51, 0x41, 0x54, 0x01); // "QAT" + frame format 1
export const MAX_HEADER = 4 << 20;
export const MAX_PAYLOAD = 512 << 20;

export interface Header {
  t: string;
  id?: number;
  [k: string]: unknown;
}

export interface Frame {
  header: Header;
  payload: Uint8Array;
}

/** One frame as bytes. */
export function encodeFrame(
  header: Header | { t: string; id?: number },
  payload: Uint8Array = new Uint8Array(0),
): Buffer {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  if (h.length > MAX_HEADER) throw new Error(`frame header of ${h.length} bytes exceeds ${MAX_HEADER}`);
  if (payload.length > MAX_PAYLOAD)
    throw new Error(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const pre = Buffer.alloc(12);
  pre.set(MAGIC, 0);
  pre.writeUInt32BE(h.length, 4);
  pre.writeUInt32BE(payload.length, 8);
  return Buffer.concat([pre, h, payload]);
}

/** Incremental frame parser: push bytes in, frames come out. Bytes before a magic are reported as noise. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes skipped because they were not part of a frame (kept to explain a broken stream). */
  noise = "";

  push(chunk: Uint8Array): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out: Frame[] = [];
    for (;;) {
      const at = this.buf.indexOf(Buffer.from(MAGIC));
      if (at < 0) {
        // keep a possible partial magic at the end
        const keep = Math.min(this.buf.length, MAGIC.length - 1);
        this.skip(this.buf.length - keep);
        break;
      }
      if (at > 0) this.skip(at);
      if (this.buf.length < 12) break;
      const hl = this.buf.readUInt32BE(4);
      const pl = this.buf.readUInt32BE(8);
      if (hl > MAX_HEADER || pl > MAX_PAYLOAD) {
        throw new Error(
          `frame claims header ${hl} and payload ${pl} bytes (limits ${MAX_HEADER}, ${MAX_PAYLOAD})`,
        );
      }
      if (this.buf.length < 12 + hl + pl) break;
      const header = JSON.parse(this.buf.subarray(12, 12 + hl).toString("utf8")) as Header;
      const payload = new Uint8Array(this.buf.subarray(12 + hl, 12 + hl + pl)); // copy: aligned, owned
      this.buf = this.buf.subarray(12 + hl + pl);
      if (typeof header !== "object" || header === null || typeof header.t !== "string") {
        throw new Error("frame header is not an object with a type");
      }
      out.push({ header, payload });
    }
    return out;
  }

  private skip(n: number): void {
    if (n <= 0) return;
    this.noise = (this.noise + this.buf.subarray(0, n).toString("latin1")).slice(-2000);
    this.buf = this.buf.subarray(n);
  }
}
