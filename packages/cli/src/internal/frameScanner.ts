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
 */
import { Frame } from "@gcs-bridge/protocol"

const HeaderSize = Frame.HeaderSize

/** One complete frame, as found at `offset`. */
export interface ScannedFrame {
  readonly _tag: "Frame"
  readonly offset: number
  readonly type: number
  readonly id: bigint
  readonly size: number
  readonly payload: Uint8Array
  /** The payload parsed as JSON. */
  readonly json: unknown
}

/** Damage at `offset`; the scanner looks for the next header after it. */
export interface ScanDamage {
  readonly _tag: "Damage"
  readonly offset: number
  readonly reason: "UnknownType" | "Undersize" | "Oversize" | "Truncated" | "InvalidJson"
  readonly message: string
  readonly type?: number
  readonly size?: number
}

/** A plausible header found at `offset` after `skipped` bytes of scanning. */
export interface ScanResync {
  readonly _tag: "Resync"
  readonly offset: number
  readonly skipped: number
}

/** The input ended while scanning: the last `bytes` bytes from `offset` held no frame. */
export interface ScanLost {
  readonly _tag: "Lost"
  readonly offset: number
  readonly bytes: number
}

/** What the scanner reports, in stream order. */
export type ScanEvent = ScannedFrame | ScanDamage | ScanResync | ScanLost

/** Options of a scanner. */
export interface FrameScannerOptions {
  /** Largest acceptable frame, header included. */
  readonly maxFrameSize: number
  /** Whether a type word is one the protocol defines. */
  readonly isKnownType: (type: number) => boolean
}

const OpenBrace = 0x7b

const utf8 = new TextDecoder()

const parseJson = (
  payload: Uint8Array
): { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string } => {
  try {
    return { ok: true, value: JSON.parse(utf8.decode(payload)) }
  } catch (error) {
    return {
      ok: false,
      message: `payload is not JSON: ${error instanceof Error ? error.message : String(error)}`
    }
  }
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, "0")}`

/**
 * The scanner. Memory is bounded by `maxFrameSize` plus one input chunk:
 * consumed bytes are dropped, and while scanning only a header's worth is kept.
 */
export class FrameScanner {
  private readonly options: FrameScannerOptions
  /** Chunks not yet consumed; joined only when a frame needs more than the first holds. */
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0
  /** Stream offset of the first pending byte. */
  private base = 0
  /** Bytes needed before another step can be taken. */
  private need = HeaderSize
  /** Stream offset where the current scan began, or undefined when aligned. */
  private scanFrom: number | undefined = undefined

  constructor(options: FrameScannerOptions) {
    this.options = options
  }

  /** Feeds the next chunk of the stream; returns what it completed. */
  push(chunk: Uint8Array): ReadonlyArray<ScanEvent> {
    if (chunk.length === 0) return []
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    if (this.pendingBytes < this.need) return []
    return this.run(false)
  }

  /** Ends the stream; reports what the remaining bytes hold. */
  end(): ReadonlyArray<ScanEvent> {
    return this.run(true)
  }

  private run(final: boolean): ReadonlyArray<ScanEvent> {
    const buffer = this.join()
    const events: Array<ScanEvent> = []
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    let pos = 0
    for (;;) {
      const available = buffer.length - pos
      const offset = this.base + pos
      if (this.scanFrom === undefined) {
        if (available === 0) {
          this.need = HeaderSize
          break
        }
        if (available < HeaderSize) {
          if (!final) {
            this.need = HeaderSize
            break
          }
          events.push({
            _tag: "Damage",
            offset,
            reason: "Truncated",
            message: `the input ends ${available} byte(s) into a frame header (${HeaderSize} bytes)`
          })
          this.scanFrom = offset + 1
          pos += 1
          continue
        }
        const type = view.getUint32(pos, true)
        const size = view.getUint32(pos + 4, true)
        const damage = this.checkHeader(offset, type, size)
        if (damage !== undefined) {
          events.push(damage)
          this.scanFrom = offset + 1
          pos += 1
          continue
        }
        if (available < size) {
          if (!final) {
            this.need = size
            break
          }
          events.push({
            _tag: "Damage",
            offset,
            reason: "Truncated",
            type,
            size,
            message: `the header says ${size} bytes but the input ends after ${available}`
          })
          this.scanFrom = offset + 1
          pos += 1
          continue
        }
        const payload = buffer.subarray(pos + HeaderSize, pos + size)
        const parsed = parseJson(payload)
        if (!parsed.ok) {
          // A payload that is not JSON usually means the size field is wrong,
          // so the next frame is searched for rather than trusted to follow.
          events.push({ _tag: "Damage", offset, reason: "InvalidJson", type, size, message: parsed.message })
          this.scanFrom = offset + 1
          pos += 1
          continue
        }
        events.push({
          _tag: "Frame",
          offset,
          type,
          size,
          id: view.getBigUint64(pos + 8, true),
          payload,
          json: parsed.value
        })
        pos += size
        continue
      }
      // Scanning: look for a plausible header at each position.
      if (available < HeaderSize + 1) {
        if (!final) {
          this.need = HeaderSize + 1
          break
        }
        const lost = this.base + buffer.length - this.scanFrom
        if (lost > 0) events.push({ _tag: "Lost", offset: this.scanFrom, bytes: lost })
        this.scanFrom = undefined
        pos = buffer.length
        this.need = HeaderSize
        break
      }
      const type = view.getUint32(pos, true)
      const size = view.getUint32(pos + 4, true)
      if (
        this.checkHeader(offset, type, size) === undefined &&
        size > HeaderSize &&
        buffer[pos + HeaderSize] === OpenBrace
      ) {
        events.push({ _tag: "Resync", offset, skipped: offset - this.scanFrom })
        this.scanFrom = undefined
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

  private checkHeader(offset: number, type: number, size: number): ScanDamage | undefined {
    if (!this.options.isKnownType(type)) {
      return {
        _tag: "Damage",
        offset,
        reason: "UnknownType",
        type,
        size,
        message: `unknown message type ${hex32(type)}`
      }
    }
    if (size < HeaderSize) {
      return {
        _tag: "Damage",
        offset,
        reason: "Undersize",
        type,
        size,
        message: `frame size ${size} is smaller than the ${HeaderSize}-byte header`
      }
    }
    if (size > this.options.maxFrameSize) {
      return {
        _tag: "Damage",
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
