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

const writeWord = (target: Uint8Array, offset: number, word: number): void => {
  target[offset] = word
  target[offset + 1] = word >>> 8
  target[offset + 2] = word >>> 16
  target[offset + 3] = word >>> 24
}

/** Writes a header for a frame of `payloadLength` bytes at the start of `target`. */
export const writeHeader = (target: Uint8Array, type: number, id: number, payloadLength: number): void => {
  // Byte stores, little-endian: a DataView per frame is an allocation on every call's path.
  writeWord(target, 0, type)
  writeWord(target, 4, HeaderSize + payloadLength)
  writeWord(target, 8, id % TwoTo32)
  writeWord(target, 12, Math.floor(id / TwoTo32))
}

const checkId = (id: number): void => {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`invalid message id ${id}`)
}

/**
 * Header and payload in one buffer, ready for a single write. Throws a `RangeError` (a caller bug) for a
 * payload the 32-bit size field cannot carry or an id that is not a non-negative safe integer.
 */
export const encodeFrame = (type: number, id: number, payload: Uint8Array): Uint8Array => {
  if (payload.length > MaxWireSize - HeaderSize)
    throw new RangeError(`frame payload of ${payload.length} bytes exceeds the 32-bit size field`)
  checkId(id)
  const frame = new Uint8Array(HeaderSize + payload.length)
  writeHeader(frame, type, id, payload.length)
  frame.set(payload, HeaderSize)
  return frame
}

const utf8 = new TextEncoder()

// Small frames are cut from a shared slab: an ArrayBuffer of their own (a malloc and a backing store for V8 to
// track) plus the encoder's intermediate array cost more than the encoding itself. A region is never reused, so
// a frame stays valid as long as someone holds it; one that is kept for long should be copied (`slice`) so that
// it does not pin the slab. Node's Buffer pool sizes: 8 KiB, at most half of it per frame.
const SlabSize = 8 * 1024
const SlabFrameLimit = SlabSize / 2
let slab = new Uint8Array(0)
let slabUsed = 0

/**
 * The frame of a UTF-8 text payload (`text`, then a `"\n"` when `newline`), encoded in place after its header.
 * Throws a `RangeError` (a caller bug) like {@link encodeFrame}.
 */
export const encodeTextFrame = (type: number, id: number, text: string, newline: boolean): Uint8Array => {
  checkId(id)
  // UTF-8 needs at most 3 bytes per UTF-16 code unit.
  const most = HeaderSize + text.length * 3 + 1
  if (most > SlabFrameLimit) return encodeFrame(type, id, utf8.encode(newline ? text + "\n" : text))
  if (slabUsed + most > slab.length) {
    slab = new Uint8Array(SlabSize)
    slabUsed = 0
  }
  const start = slabUsed
  let length = utf8.encodeInto(text, slab.subarray(start + HeaderSize, start + most)).written
  if (newline) slab[start + HeaderSize + length++] = 0x0a
  const end = start + HeaderSize + length
  // Eight-byte alignment keeps each header's words aligned for whoever reads them in place.
  slabUsed = (end + 7) & ~7
  const frame = slab.subarray(start, end)
  writeHeader(frame, type, id, length)
  return frame
}
