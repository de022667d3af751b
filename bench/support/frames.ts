/**
 * Byte-level framing for the benchmark peers: just enough of GCS-PROTOCOL §2
 * (16-byte header: type u32 LE, total size u32 LE, id u64 LE) to split a
 * stream into frames and build canned ones, without parsing any JSON — so a
 * peer built on it costs next to nothing and the figures are the host's own.
 */

/** Header length of every frame. */
export const HeaderSize = 16

/** Bit that turns a request type word into its response type word (0x1… → 0x2…). */
export const ResponseBit = 0x10000000

/** The null (UVM) container id. */
export const NullContainerId = "00000000-0000-0000-0000-000000000000"

/** Builds one frame: header plus `payload`. */
export const frame = (type: number, id: bigint, payload: Uint8Array): Buffer => {
  const out = Buffer.allocUnsafe(HeaderSize + payload.length)
  out.writeUInt32LE(type >>> 0, 0)
  out.writeUInt32LE(HeaderSize + payload.length, 4)
  out.writeBigUInt64LE(id, 8)
  out.set(payload, HeaderSize)
  return out
}

/** One frame's header fields and payload (a view into the scanner's buffer: use it before the next push). */
export interface RawFrame {
  readonly type: number
  readonly id: bigint
  readonly payload: Buffer
}

/**
 * Incremental frame splitter. `push` calls `onFrame` for every complete frame
 * and keeps the incomplete tail; a frame that announces a size below the
 * header or above `maxSize` throws (a peer bug: the benchmarks stop).
 */
export class FrameScanner {
  private pending: Buffer = Buffer.alloc(0)

  constructor(
    private readonly onFrame: (frame: RawFrame) => void,
    private readonly maxSize = 16 * 1024 * 1024
  ) {}

  push(chunk: Buffer): void {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    let offset = 0
    while (buf.length - offset >= HeaderSize) {
      const size = buf.readUInt32LE(offset + 4)
      if (size < HeaderSize || size > this.maxSize)
        throw new Error(`frame of ${size} bytes at offset ${offset}`)
      if (buf.length - offset < size) break
      this.onFrame({
        type: buf.readUInt32LE(offset),
        id: buf.readBigUInt64LE(offset + 8),
        payload: buf.subarray(offset + HeaderSize, offset + size)
      })
      offset += size
    }
    buf = buf.subarray(offset)
    // Copy the tail so the chunk it came from can be collected.
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf)
  }
}
