/**
 * The 16-byte frame header (§2): `Type` u32, `Size` u32 (header included), `ID` u64, all little-endian,
 * followed by exactly `Size - 16` payload bytes.
 */

/** Size of the frame header in bytes. */
export const HeaderSize = 16

/** Inbound size limit of the Go host (header included): 64 KiB. */
export const DefaultMaxFrameSize = 0x10000

/** Largest value the 32-bit `Size` field can carry. */
export const MaxWireSize = 0xffffffff

/**
 * One message: type word, id and payload bytes (no header). `id` is the u64 field as a number: ids above
 * 2^53 would lose precision, which never matters because hosts count ids up from 0.
 */
export interface Frame {
  readonly type: number
  readonly id: number
  readonly payload: Uint8Array
}

const TwoTo32 = 0x100000000

/** Writes a header for a frame of `payloadLength` bytes at the start of `target`. */
export const writeHeader = (target: Uint8Array, type: number, id: number, payloadLength: number): void => {
  const view = new DataView(target.buffer, target.byteOffset, HeaderSize)
  view.setUint32(0, type >>> 0, true)
  view.setUint32(4, (HeaderSize + payloadLength) >>> 0, true)
  view.setUint32(8, (id % TwoTo32) >>> 0, true)
  view.setUint32(12, Math.floor(id / TwoTo32) >>> 0, true)
}

/**
 * Header and payload in one buffer, ready for a single write. Throws a `RangeError` (a caller bug) for a
 * payload the 32-bit size field cannot carry or an id that is not a non-negative safe integer.
 */
export const encodeFrame = (type: number, id: number, payload: Uint8Array): Uint8Array => {
  if (payload.length > MaxWireSize - HeaderSize)
    throw new RangeError(`frame payload of ${payload.length} bytes exceeds the 32-bit size field`)
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`invalid message id ${id}`)
  const frame = new Uint8Array(HeaderSize + payload.length)
  writeHeader(frame, type, id, payload.length)
  frame.set(payload, HeaderSize)
  return frame
}
