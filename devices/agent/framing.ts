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
const PREFIX = 12;
export const MAX_HEADER = 4 << 20;
/**
 * The largest payload either side accepts. The biggest thing a frame carries is one validate batch: 32×3×224×224
 * float32 is 19.3 MiB, and 32×3×384×384 is 56.6 MiB; 64 MiB holds those with room for labels and alignment.
 * Uploads travel in 256 KiB put.chunk frames, so nothing else comes near it. The host splits a batch that would
 * exceed it (AgentClient.runBatch), and a peer claiming more is refused from the 12-byte prefix alone, before
 * anything is buffered for it — a hostile or broken peer cannot make the other side allocate 4 GiB.
 */
export const MAX_PAYLOAD = 64 << 20;

export interface Header {
  t: string;
  id?: number;
  [k: string]: unknown;
}

export interface Frame {
  header: Header;
  payload: Uint8Array;
}

/** A frame's prefix claimed more than the limit; `size` and `limit` say by how much (the stream is unusable after). */
export class FrameTooLargeError extends Error {
  override name = "FrameTooLargeError";
  constructor(
    readonly part: "header" | "payload",
    readonly size: number,
    readonly limit: number,
  ) {
    super(`frame ${part} of ${mib(size)} exceeds the limit of ${mib(limit)}`);
  }
}

function mib(n: number): string {
  return n >= 1 << 20 ? `${n} bytes (${(n / (1 << 20)).toFixed(1)} MiB)` : `${n} bytes`;
}

/** A frame's prefix and header, to be followed on the stream by exactly `payloadLength` payload bytes. */
export function encodeHead(
  header: Header | { t: string; id?: number },
  payloadLength: number,
  maxPayload = MAX_PAYLOAD,
): Buffer {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  if (h.length > MAX_HEADER) throw new FrameTooLargeError("header", h.length, MAX_HEADER);
  if (payloadLength > maxPayload) throw new FrameTooLargeError("payload", payloadLength, maxPayload);
  const head = Buffer.alloc(PREFIX + h.length);
  head.set(MAGIC, 0);
  head.writeUInt32BE(h.length, 4);
  head.writeUInt32BE(payloadLength, 8);
  head.set(h, PREFIX);
  return head;
}

/** One frame as bytes. */
export function encodeFrame(
  header: Header | { t: string; id?: number },
  payload: Uint8Array = new Uint8Array(0),
): Buffer {
  return Buffer.concat([encodeHead(header, payload.length), payload]);
}

/**
 * Incremental frame parser: push bytes in, frames come out. Bytes before a magic are reported as noise.
 *
 * Linear time: chunks are kept in a list (views, not copies) until a whole frame is there, then its payload is copied
 * once into its own buffer. Re-joining the buffer on every chunk made a 16 MiB frame in 64 KiB chunks cost seconds.
 * Callers must not modify a pushed chunk afterwards.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Total length of the frame whose prefix has been read, or -1 while looking for one. */
  private want = -1;
  private headerLength = 0;
  /** Bytes skipped because they were not part of a frame (kept to explain a broken stream). */
  noise = "";

  constructor(private readonly maxPayload = MAX_PAYLOAD) {}

  /** Bytes held for a frame that is not complete yet (0 between frames). */
  get buffered(): number {
    return this.want < 0 ? 0 : this.size;
  }

  push(chunk: Uint8Array): Frame[] {
    if (chunk.length) {
      this.chunks.push(
        Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
      );
      this.size += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (this.want < 0 && !this.findPrefix()) break;
      if (this.size < this.want) break;
      out.push(this.takeFrame());
    }
    return out;
  }

  /** Skip to the next magic and read the prefix; false when more bytes are needed. Throws on an oversized claim. */
  private findPrefix(): boolean {
    // while looking, the held bytes are few (a partial prefix, or the rest of one chunk): joining them is cheap
    let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    const at = buf.indexOf(MAGIC);
    if (at < 0) {
      // keep a possible partial magic at the end
      const keep = Math.min(buf.length, MAGIC.length - 1);
      buf = this.skip(buf, buf.length - keep);
    } else buf = this.skip(buf, at);
    this.chunks = buf.length ? [buf] : [];
    this.size = buf.length;
    if (at < 0 || buf.length < PREFIX) return false;
    const hl = buf.readUInt32BE(4);
    const pl = buf.readUInt32BE(8);
    if (hl > MAX_HEADER) throw new FrameTooLargeError("header", hl, MAX_HEADER);
    if (pl > this.maxPayload) throw new FrameTooLargeError("payload", pl, this.maxPayload);
    this.headerLength = hl;
    this.want = PREFIX + hl + pl;
    return true;
  }

  /** Cut the complete frame off the front of the chunks: header parsed, payload copied once. */
  private takeFrame(): Frame {
    const hl = this.headerLength;
    const headerBytes = Buffer.alloc(hl);
    const payload = new Uint8Array(this.want - PREFIX - hl); // owned and aligned
    let pos = 0; // stream offset of the current chunk's first byte
    let i = 0;
    for (; i < this.chunks.length && pos < this.want; i++) {
      const c = this.chunks[i]!;
      const end = pos + c.length;
      copyRange(c, pos, PREFIX, PREFIX + hl, headerBytes, PREFIX);
      copyRange(c, pos, PREFIX + hl, this.want, payload, PREFIX + hl);
      pos = end;
    }
    // the last chunk used may hold the start of the next frame
    const rest =
      pos > this.want ? this.chunks[i - 1]!.subarray(this.chunks[i - 1]!.length - (pos - this.want)) : null;
    this.chunks = rest ? [rest, ...this.chunks.slice(i)] : this.chunks.slice(i);
    this.size -= this.want;
    this.want = -1;
    const header = JSON.parse(headerBytes.toString("utf8")) as Header;
    if (typeof header !== "object" || header === null || typeof header.t !== "string") {
      throw new Error("frame header is not an object with a type");
    }
    return { header, payload };
  }

  private skip(buf: Buffer, n: number): Buffer {
    if (n <= 0) return buf;
    this.noise = (this.noise + buf.subarray(Math.max(0, n - 2000), n).toString("latin1")).slice(-2000);
    return buf.subarray(n);
  }
}

/**
 * Copy the part of stream range [from, to) that lies in chunk `c` (whose first byte is at stream offset `pos`) into
 * `dest`, where stream offset `destBase` lands at dest[0].
 */
function copyRange(
  c: Buffer,
  pos: number,
  from: number,
  to: number,
  dest: Uint8Array,
  destBase: number,
): void {
  const a = Math.max(from, pos);
  const b = Math.min(to, pos + c.length);
  if (a < b) dest.set(c.subarray(a - pos, b - pos), a - destBase);
}
