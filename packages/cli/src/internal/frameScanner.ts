/**
 * An incremental splitter of a captured bridge byte stream into frames that,
 * unlike the bridge's own decoder, survives damage: after a bad frame it
 * scans forward for the next plausible header and carries on.
 *
 * A plausible header has a known type word, a size between the header size
 * and the limit, and a payload that starts with `{` (both the Go host and the
 * Linux GCS write one JSON object and no leading whitespace). JSON text cannot
 * contain the byte 0x01 unescaped, and every type word starts with it (the
 * version byte, little-endian), so a scan cannot lock onto bytes inside an
 * intact payload.
 *
 * JSON text holds no raw control byte (below 0x20 but tab, LF, CR), so a
 * payload with one is refused without being parsed, as soon as the byte
 * arrives. Every plausible header has one (the top byte of a size below
 * 512 MiB), so no two candidate frames can both have a clean payload where
 * they overlap: each byte is parsed as JSON at most once or twice, and a
 * hostile capture of headers that each claim the maximum size costs no more
 * than one that does not.
 *
 * Damage is reported by region: everything from the first bad byte to the
 * next good frame (or the end of the input) is one event, however many bad
 * headers it holds, so a hostile capture cannot make the output outgrow its
 * good frames.
 */
import { Frame } from "@gcs-bridge/protocol"

const HeaderSize = Frame.HeaderSize

/** What was wrong where a frame was expected. */
export type DamageReason = "UnknownType" | "Undersize" | "Oversize" | "Truncated" | "InvalidJson"

/** The header fields of a frame found at `offset`. */
export interface FrameHeader {
  readonly offset: number
  readonly type: number
  readonly id: bigint
  readonly size: number
}

/** One complete frame, as the scanner's `decode` made it. */
export interface ScannedFrame<A> {
  readonly _tag: "Frame"
  readonly offset: number
  readonly value: A
}

/** The first bad header of a damaged region. */
export interface FirstDamage {
  readonly offset: number
  readonly reason: DamageReason
  readonly message: string
  readonly type?: number
  readonly size?: number
}

/**
 * A damaged region: `bytes` bytes from `offset` (its first damage's) held no
 * frame; `count` bad headers were met in it. `resynchronised` is false when
 * the input ended inside it.
 */
export interface ScanDamage extends FirstDamage {
  readonly _tag: "Damage"
  readonly bytes: number
  readonly count: number
  readonly resynchronised: boolean
}

/** What the scanner reports, in stream order. */
export type ScanEvent<A> = ScannedFrame<A> | ScanDamage

/** Options of a scanner. */
export interface FrameScannerOptions<A> {
  /** Largest acceptable frame, header included. */
  readonly maxFrameSize: number
  /** Whether a type word is one the protocol defines. */
  readonly isKnownType: (type: number) => boolean
  /**
   * Makes the report of a well-framed payload; a failure (the payload is not
   * JSON) is damage: the size field is then likely wrong, so the next frame
   * is searched for rather than trusted to follow.
   */
  readonly decode: (
    header: FrameHeader,
    payload: Uint8Array
  ) => { readonly ok: true; readonly value: A } | { readonly ok: false; readonly message: string }
}

const OpenBrace = 0x7b

/** The first byte of `bytes[from, to)` that JSON text cannot hold raw, or -1. */
const firstControl = (bytes: Uint8Array, from: number, to: number): number => {
  for (let i = from; i < to; i++) {
    const b = bytes[i]!
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return i
  }
  return -1
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, "0")}`

/**
 * The scanner. Memory is bounded by `maxFrameSize` plus one input chunk:
 * consumed bytes are dropped, and while scanning only a header's worth is kept.
 * Time is linear: each byte is looked at as a header start at most once.
 */
export class FrameScanner<A> {
  private readonly options: FrameScannerOptions<A>
  /** Chunks not yet consumed; joined only when a frame needs more than the first holds. */
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0
  /** Stream offset of the first pending byte. */
  private base = 0
  /** Bytes needed before another step can be taken. */
  private need = HeaderSize
  /** Stream offsets of the payload of the frame waited for, when waiting for one. */
  private awaiting: { readonly from: number; readonly to: number } | undefined = undefined
  /** Looking for a plausible header (after damage) rather than reading a frame. */
  private scanning = false
  /** The damaged region not yet closed by a good frame, and its bad headers. */
  private region: { readonly first: FirstDamage; count: number } | undefined = undefined

  constructor(options: FrameScannerOptions<A>) {
    this.options = options
  }

  /** Feeds the next chunk of the stream; returns what it completed. */
  push(chunk: Uint8Array): ReadonlyArray<ScanEvent<A>> {
    if (chunk.length === 0) return []
    const at = this.base + this.pendingBytes
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    // A frame waited for is refused as soon as a byte it cannot hold arrives.
    const wait = this.awaiting
    const refused =
      wait !== undefined &&
      firstControl(chunk, Math.max(0, wait.from - at), Math.min(chunk.length, wait.to - at)) >= 0
    if (this.pendingBytes < this.need && !refused) return []
    return this.run(false)
  }

  /** Ends the stream; reports what the remaining bytes hold. */
  end(): ReadonlyArray<ScanEvent<A>> {
    return this.run(true)
  }

  /** Opens a damaged region at `damage` or counts it in the open one; scanning starts after it. */
  private damage(damage: FirstDamage): void {
    if (this.region === undefined) this.region = { first: damage, count: 1 }
    else this.region.count++
    this.scanning = true
  }

  /** Closes the open region at `end`, if any. */
  private close(events: Array<ScanEvent<A>>, end: number, resynchronised: boolean): void {
    if (this.region === undefined) return
    const { first, count } = this.region
    events.push({ _tag: "Damage", ...first, bytes: end - first.offset, count, resynchronised })
    this.region = undefined
  }

  private run(final: boolean): ReadonlyArray<ScanEvent<A>> {
    const buffer = this.join()
    const events: Array<ScanEvent<A>> = []
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    let pos = 0
    this.awaiting = undefined
    for (;;) {
      const available = buffer.length - pos
      const offset = this.base + pos
      if (!this.scanning) {
        if (available === 0) {
          this.need = HeaderSize
          if (final) this.close(events, offset, false)
          break
        }
        if (available < HeaderSize) {
          if (!final) {
            this.need = HeaderSize
            break
          }
          this.damage({
            offset,
            reason: "Truncated",
            message: `the input ends ${available} byte(s) into a frame header (${HeaderSize} bytes)`
          })
          pos += 1
          continue
        }
        const type = view.getUint32(pos, true)
        const size = view.getUint32(pos + 4, true)
        const bad = this.checkHeader(offset, type, size)
        if (bad !== undefined) {
          this.damage(bad)
          pos += 1
          continue
        }
        const control = firstControl(buffer, pos + HeaderSize, pos + Math.min(size, available))
        if (control >= 0) {
          const message = `payload is not JSON: control byte 0x${buffer[control]!.toString(16).padStart(2, "0")} at payload offset ${control - pos - HeaderSize}`
          this.damage({ offset, reason: "InvalidJson", type, size, message })
          pos += 1
          continue
        }
        if (available < size) {
          if (!final) {
            this.need = size
            this.awaiting = { from: offset + HeaderSize, to: offset + size }
            break
          }
          this.damage({
            offset,
            reason: "Truncated",
            type,
            size,
            message: `the header says ${size} bytes but the input ends after ${available}`
          })
          pos += 1
          continue
        }
        const header = { offset, type, id: view.getBigUint64(pos + 8, true), size }
        const decoded = this.options.decode(header, buffer.subarray(pos + HeaderSize, pos + size))
        if (!decoded.ok) {
          this.damage({ offset, reason: "InvalidJson", type, size, message: decoded.message })
          pos += 1
          continue
        }
        this.close(events, offset, true)
        events.push({ _tag: "Frame", offset, value: decoded.value })
        pos += size
        continue
      }
      // Scanning: look for a plausible header at each position.
      if (available < HeaderSize + 1) {
        if (!final) {
          this.need = HeaderSize + 1
          break
        }
        pos = buffer.length
        this.scanning = false
        this.need = HeaderSize
        this.close(events, this.base + pos, false)
        break
      }
      const type = view.getUint32(pos, true)
      const size = view.getUint32(pos + 4, true)
      if (
        size > HeaderSize &&
        size <= this.options.maxFrameSize &&
        buffer[pos + HeaderSize] === OpenBrace &&
        this.options.isKnownType(type)
      ) {
        this.scanning = false
        continue
      }
      pos += 1
    }
    this.base += pos
    const rest = buffer.subarray(pos)
    this.pending = rest.length === 0 ? [] : [rest]
    this.pendingBytes = rest.length
    return events
  }

  private checkHeader(offset: number, type: number, size: number): FirstDamage | undefined {
    if (!this.options.isKnownType(type)) {
      return { offset, reason: "UnknownType", type, size, message: `unknown message type ${hex32(type)}` }
    }
    if (size < HeaderSize) {
      return {
        offset,
        reason: "Undersize",
        type,
        size,
        message: `frame size ${size} is smaller than the ${HeaderSize}-byte header`
      }
    }
    if (size > this.options.maxFrameSize) {
      return {
        offset,
        reason: "Oversize",
        type,
        size,
        message: `frame size ${size} exceeds the limit of ${this.options.maxFrameSize} bytes`
      }
    }
    return undefined
  }

  private join(): Uint8Array {
    if (this.pending.length === 1) return this.pending[0]!
    const joined = new Uint8Array(this.pendingBytes)
    let at = 0
    for (const chunk of this.pending) {
      joined.set(chunk, at)
      at += chunk.length
    }
    this.pending = [joined]
    return joined
  }
}
