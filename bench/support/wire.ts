/**
 * Bytes on a socket, for the peers and the raw references: just enough of
 * GCS-PROTOCOL §2 (16-byte header: type u32 LE, total size u32 LE, id u64 LE)
 * to split a stream into frames and build canned ones without parsing any
 * JSON — so a peer built on it costs next to nothing — and bulk writes in
 * 64 KiB chunks that honour `drain`.
 */
import type * as net from "node:net"

/** Header length of every frame. */
export const HeaderSize = 16

/** Bit that turns a request type word into its response type word (0x1… → 0x2…). */
export const ResponseBit = 0x10000000

/** Procedure words (GCS-PROTOCOL §3): a request's type is `0x10000000 + proc`, its response's `0x20000000 + proc`. */
export const Proc = {
  Start: 0x00100201,
  Execute: 0x00100501,
  Wait: 0x00100601,
  Negotiate: 0x00100b01
} as const

/** The request type word of `proc`. */
export const requestType = (proc: number): number => 0x10000000 + proc

/** The null (UVM) container id. */
export const NullContainerId = "00000000-0000-0000-0000-000000000000"

/** The size of one bulk write, as `dd bs=64K` and the relays use. */
export const ChunkSize = 64 * 1024

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
 * Incremental frame splitter: `push` calls `onFrame` for every complete frame
 * and keeps the incomplete tail; a size below the header or above 16 MiB
 * throws (a peer bug: the benchmark stops).
 */
export class FrameScanner {
  private pending: Buffer = Buffer.alloc(0)

  constructor(private readonly onFrame: (frame: RawFrame) => void) {}

  push(chunk: Buffer): void {
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    let offset = 0
    while (buf.length - offset >= HeaderSize) {
      const size = buf.readUInt32LE(offset + 4)
      if (size < HeaderSize || size > 1 << 24) throw new Error(`frame of ${size} bytes at offset ${offset}`)
      if (buf.length - offset < size) break
      this.onFrame({
        type: buf.readUInt32LE(offset),
        id: buf.readBigUInt64LE(offset + 8),
        payload: buf.subarray(offset + HeaderSize, offset + size)
      })
      offset += size
    }
    // Copy the tail so the chunk it came from can be collected.
    this.pending = Buffer.from(buf.subarray(offset))
  }
}

const block = Buffer.alloc(ChunkSize, 0x5a)

/** Writes `bytes` in 64 KiB writes, waiting for `drain` whenever `write` asks to, then ends the socket. */
export const pump = (socket: net.Socket, bytes: number): void => {
  let sent = 0
  const more = () => {
    while (sent < bytes) {
      const size = Math.min(ChunkSize, bytes - sent)
      sent += size
      if (!socket.write(size === ChunkSize ? block : block.subarray(0, size)))
        return void socket.once("drain", more)
    }
    socket.end()
  }
  more()
}

/** Counts what `socket` receives until its end, when `onEnd` gets the count. */
export const count = (socket: net.Socket, onEnd: (bytes: number) => void): void => {
  let received = 0
  socket.on("data", (chunk: Buffer) => {
    received += chunk.length
  })
  socket.on("end", () => onEnd(received))
}
