/**
 * The engine of `gcsctl decode`: a captured bridge byte stream (either
 * direction, even both concatenated) in, one report per frame out. Each frame
 * is decoded as the bridge decodes it (`Codec`), and shown as it was on the
 * wire; a body that fails its Schema is still shown, raw, with the complaint.
 * Damage is reported once per damaged region, with its byte range, and
 * decoding resumes at the next plausible header. The input is streamed: memory
 * is bounded by the largest frame, time is linear in the input. A capture
 * file's stdio records (`run --capture-stdio`) come out as `StdioReport`s.
 *
 * @since 0.1.0
 */
import { Codec, MessageType, type ProtocolError as Protocol } from "@gcs-bridge/protocol"
import { Effect, Result, Stream } from "effect"
import * as Capture from "./Capture.js"
import { Data } from "effect"
import type { HexInputError } from "./CliError.js"
import {
  type DamageReason,
  type FrameHeader,
  FrameScanner,
  type ScanDamage,
  type ScanEvent
} from "./internal/frameScanner.js"
import { HexDecoder } from "./internal/hexDecoder.js"

/**
 * The largest frame `decode` accepts. Far above the 64 KiB a Go host takes
 * from a guest, because host→guest frames (security policies) may be larger;
 * it bounds memory and what a damaged size field can swallow.
 *
 * @since 0.1.0
 */
export const CaptureFrameLimit = 16 * 1024 * 1024

/**
 * A frame, decoded.
 *
 * @since 0.1.0
 */
export interface FrameReport {
  /** Capture files only: who sent the frame. */
  readonly from?: "host" | "guest"
  /** Capture files only: seconds since the capture began, when the frame's last byte was recorded. */
  readonly time?: number
  readonly offset: number
  /** `Request(Create)`, `Response(ExecuteProcess)`, `Notify(Container)`, … */
  readonly type: string
  /** The type word in hex. */
  readonly typeWord: string
  /** The header id; a string when it exceeds 2^53 − 1. */
  readonly id: number | string
  /** Total size, header included. */
  readonly size: number
  /**
   * The body as it was on the wire (fields absent there stay absent), with
   * JSON-in-string fields and HRESULTs shown decoded; raw when `schemaError`
   * is set; absent when `bodyOmitted` is.
   */
  readonly body?: unknown
  /** The protocol's `InvalidBody` complaint: why the body does not match the Schema of its type. */
  readonly schemaError?: string
  /** Why the body is not printed (it nests deeper than `PrintDepth`). */
  readonly bodyOmitted?: string
}

/**
 * Bytes that held no frame: `bytes` bytes from `offset` up to the next good
 * frame (or the end of the input, when `resynchronised` is false), in which
 * `count` candidate frames were refused; `error`, `message`, `type` and
 * `size` describe the first of them.
 *
 * @since 0.1.0
 */
export interface DamageReport {
  readonly from?: "host" | "guest"
  readonly time?: number
  readonly offset: number
  readonly error: DamageReason
  readonly message: string
  readonly type?: string
  readonly size?: number
  readonly bytes: number
  readonly count: number
  readonly resynchronised: boolean
}

/**
 * Bytes of a stdio connection in a capture made with `--capture-stdio`: one record (a record longer than
 * `StdioLineLimit` is several). The bytes are `text` when they are valid UTF-8, else `base64`: either way
 * exact, and the usual case (text output) stays readable.
 *
 * @since 0.1.0
 */
export interface StdioReport {
  readonly from: "host" | "guest"
  readonly time: number
  /** The vsock port of the connection (the ports of the ExecuteProcess request that named it). */
  readonly port: number
  /** How many bytes. */
  readonly bytes: number
  readonly text?: string
  readonly base64?: string
}

/**
 * The most bytes of a stdio record one report carries: memory stays bounded whatever a record's length says.
 *
 * @since 0.1.0
 */
export const StdioLineLimit = 1024 * 1024

/**
 * One line of `gcsctl decode` output.
 *
 * @since 0.1.0
 */
export type CaptureReport = FrameReport | DamageReport | StdioReport

/**
 * Whether a report is stdio bytes.
 *
 * @since 0.1.0
 */
export const isStdio = (report: CaptureReport): report is StdioReport => "port" in report

/**
 * Whether a report is damage.
 *
 * @since 0.1.0
 */
export const isDamage = (report: CaptureReport): report is DamageReport => "error" in report

/**
 * Whether a type word is one the protocol defines: a request or response of a
 * known procedure, the container notification, or the bare `0x20000000`
 * response the gcs-sidecar uses for its own errors.
 *
 * @since 0.1.0
 */
export const isKnownType = (type: number): boolean => {
  const cls = MessageType.classOf(type)
  const proc = MessageType.procOf(type)
  if (cls === MessageType.MessageClass.Notification) return type >>> 0 === MessageType.NotifyContainer
  if (cls === MessageType.MessageClass.Response && proc === 0) return true
  return (
    (cls === MessageType.MessageClass.Request || cls === MessageType.MessageClass.Response) &&
    MessageType.procName(proc) !== undefined
  )
}

/**
 * How deep a body may nest and still be printed. A hostile frame can nest
 * millions of levels in 16 MiB; printing that would exhaust the stack.
 *
 * @since 0.1.0
 */
export const PrintDepth = 1000

/**
 * The body through the bridge's own path (`Codec`: one parse, the compiled
 * Schema, `InvalidJson` / `InvalidBody` as typed errors, deep nesting included).
 */
const decodeBody = (
  type: number,
  id: bigint,
  payload: Uint8Array
): Result.Result<unknown, Protocol.ProtocolError> => {
  const safeId = id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : undefined
  const at = { messageType: type, id: safeId }
  const name = MessageType.procName(MessageType.procOf(type))
  switch (MessageType.classOf(type)) {
    case MessageType.MessageClass.Request:
      return Result.map(Codec.decodeRequest({ type, id: safeId ?? -1, payload }), (request) => request.body)
    case MessageType.MessageClass.Response:
      return name === undefined
        ? Codec.decodeResponseBase(payload, at)
        : Codec.decodeResponse(name, payload, at)
    case MessageType.MessageClass.Notification:
      return Codec.decodeNotification(payload, at)
  }
  return Codec.parsePayload(payload, at)
}

const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`

const utf8 = new TextEncoder()
const hasOwn = Object.prototype.hasOwnProperty
const tooDeep: unique symbol = Symbol("tooDeep")

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * What was on the wire (`raw`, walked in its own key order), with the decoded
 * value (when the Schema accepted it) where it adds something: a JSON-in-string
 * field as the document it carries, a value the Schema normalises (an HRESULT
 * unsigned). Absent fields stay absent, `null` stays `null`; a key the Schema
 * does not know is kept. Throws `tooDeep` past `PrintDepth`.
 */
const wireView = (raw: unknown, decoded: unknown, depth: number): unknown => {
  if (depth > PrintDepth) throw tooDeep
  if (Array.isArray(raw)) {
    const items: ReadonlyArray<unknown> | undefined =
      Array.isArray(decoded) && decoded.length === raw.length ? decoded : undefined
    return raw.map((item: unknown, i) => wireView(item, items?.[i], depth + 1))
  }
  if (isRecord(raw)) {
    const fields = isRecord(decoded) ? decoded : undefined
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(raw)) {
      const value = wireView(
        raw[key],
        fields !== undefined && hasOwn.call(fields, key) ? fields[key] : undefined,
        depth + 1
      )
      // A wire key named `__proto__` is data: define it rather than set the prototype.
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
    }
    return out
  }
  if (typeof raw === "string" && typeof decoded === "object" && decoded !== null) {
    const text = utf8.encode(raw)
    if (nestsDeeperThan(text, PrintDepth - depth)) throw tooDeep
    const inner = Codec.parsePayload(text)
    return Result.isSuccess(inner) ? wireView(inner.success, decoded, depth + 1) : raw
  }
  return raw !== null && typeof decoded === typeof raw ? decoded : raw
}

/**
 * Whether JSON text nests deeper than `limit` (brackets outside strings), read
 * off the bytes: a body too deep to print is not parsed a second time for
 * printing (16 MiB of `[` costs the parser about 1 GB).
 */
const nestsDeeperThan = (bytes: Uint8Array, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if (inString) {
      if (b === 0x5c) i++
      else if (b === 0x22) inString = false
    } else if (b === 0x22) inString = true
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > limit) return true
    } else if (b === 0x5d || b === 0x7d) depth--
  }
  return false
}

/** The report of one well-framed payload; fails (damage) when the payload is not JSON. */
const frameReport = (
  header: FrameHeader,
  payload: Uint8Array
): { readonly ok: true; readonly value: FrameReport } | { readonly ok: false; readonly message: string } => {
  const base = {
    offset: header.offset,
    type: MessageType.typeName(header.type),
    typeWord: hex32(header.type),
    id: header.id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(header.id) : header.id.toString(),
    size: header.size
  }
  const decoded = decodeBody(header.type, header.id, payload)
  if (Result.isFailure(decoded) && decoded.failure.reason !== "InvalidBody")
    return { ok: false, message: decoded.failure.message }
  const schemaError = Result.isFailure(decoded) ? { schemaError: decoded.failure.message } : {}
  const bodyOmitted = `the body nests deeper than ${PrintDepth} levels; not printed`
  if (nestsDeeperThan(payload, PrintDepth))
    return { ok: true, value: { ...base, ...schemaError, bodyOmitted } }
  // The body as sent: a second parse, kept apart from the decoded value the Codec made.
  const raw = Codec.parsePayload(payload)
  if (Result.isFailure(raw)) return { ok: false, message: raw.failure.message }
  try {
    const body = wireView(raw.success, Result.isSuccess(decoded) ? decoded.success : undefined, 0)
    return { ok: true, value: { ...base, body, ...schemaError } }
  } catch (e) {
    if (e !== tooDeep) throw e
    return { ok: true, value: { ...base, ...schemaError, bodyOmitted } }
  }
}

const damageReport = (event: ScanDamage): DamageReport => ({
  offset: event.offset,
  error: event.reason,
  message: event.message,
  ...(event.type === undefined ? {} : { type: MessageType.typeName(event.type) }),
  ...(event.size === undefined ? {} : { size: event.size }),
  bytes: event.bytes,
  count: event.count,
  resynchronised: event.resynchronised
})

const toReport = (event: ScanEvent<FrameReport>): CaptureReport =>
  event._tag === "Frame" ? event.value : damageReport(event)

/**
 * Options of `decodeCapture`.
 *
 * @since 0.1.0
 */
export interface DecodeCaptureOptions {
  /** The input is hex text (whitespace ignored) rather than raw bytes. */
  readonly hex?: boolean
  /** Largest acceptable frame; default `CaptureFrameLimit`. */
  readonly maxFrameSize?: number
}

/**
 * Decodes a captured byte stream into reports, in stream order. Fails only
 * when `--hex` input is not hex; damage in the frames is reported, not failed.
 *
 * @since 0.1.0
 */
export const decodeCapture = <E, R>(
  input: Stream.Stream<Uint8Array, E, R>,
  options: DecodeCaptureOptions = {}
): Stream.Stream<CaptureReport, E | HexInputError | CaptureFileError, R> =>
  Stream.suspend(() => {
    const newScanner = () =>
      new FrameScanner({
        maxFrameSize: options.maxFrameSize ?? CaptureFrameLimit,
        isKnownType,
        decode: frameReport
      })
    const scanner = newScanner()
    const hex = options.hex === true ? new HexDecoder() : undefined
    const bytes: Stream.Stream<Uint8Array, E | HexInputError, R> =
      hex === undefined
        ? input
        : Stream.concat(
            Stream.mapEffect(input, (chunk) => Effect.fromResult(hex.push(chunk))),
            Stream.fromEffectDrain(Effect.suspend(() => Effect.fromResult(hex.end())))
          )
    // Raw bytes go to one scanner; a capture file's bridge records to one per direction, and each stdio
    // record to a report of its own.
    let reader: CaptureRecordReader | undefined
    const scanners = [newScanner(), newScanner()]
    const fromOf = (direction: number): "host" | "guest" =>
      direction === Capture.HostToGuest ? "host" : "guest"
    const stamp = (direction: number, time: bigint) => (event: ScanEvent<FrameReport>) => ({
      from: fromOf(direction),
      time: Number(time) / 1e9,
      ...toReport(event)
    })
    const stdio = new StdioCollector()
    const prefix = new PrefixSniffer()
    const feed = (chunk: Uint8Array): ReadonlyArray<CaptureReport> => {
      if (reader === undefined) return scanner.push(chunk).map(toReport)
      const out: Array<CaptureReport> = []
      reader.push(chunk, (direction, time, part, port, done) => {
        if (port === MessageType.LinuxGcsVsockPort) {
          out.push(...scanners[direction]!.push(part).map(stamp(direction, time)))
          return
        }
        for (const bytes of stdio.push(part, done))
          out.push({ from: fromOf(direction), time: Number(time) / 1e9, port, ...bytesReport(bytes) })
      })
      return out
    }
    const sniffed = (chunk: Uint8Array | undefined) =>
      Effect.suspend(() => {
        if (reader?.error !== undefined) return Effect.fail(reader.error)
        const ready = chunk === undefined ? prefix.end() : prefix.push(chunk)
        if (ready === undefined) return Effect.succeed([])
        if (prefix.version !== undefined) reader ??= new CaptureRecordReader(prefix.version)
        const out = feed(ready)
        if (chunk !== undefined) return Effect.succeed(out)
        if (reader === undefined) return Effect.succeed([...out, ...scanner.end().map(toReport)])
        const error = reader.end()
        if (error !== undefined) return Effect.fail(error)
        return Effect.succeed([
          ...out,
          ...scanners.flatMap((s, direction) => s.end().map(stamp(direction, reader!.time)))
        ])
      })
    return Stream.concat(
      Stream.flattenIterable(Stream.mapEffect(bytes, sniffed)),
      Stream.flattenIterable(Stream.fromEffect(sniffed(undefined)))
    )
  })

/**
 * A capture file that ends inside a record or names a direction other than 0 or 1.
 *
 * @since 0.1.0
 */
export class CaptureFileError extends Data.TaggedError("CaptureFileError")<{
  readonly offset: number
  readonly message: string
}> {}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/** Bytes as `text` when they are UTF-8, else `base64`. */
const bytesReport = (bytes: Uint8Array): Pick<StdioReport, "bytes" | "text" | "base64"> => {
  try {
    return { bytes: bytes.length, text: strictUtf8.decode(bytes) }
  } catch {
    return { bytes: bytes.length, base64: Buffer.from(bytes).toString("base64") }
  }
}

/** Gathers a stdio record's parts; gives it whole, or in `StdioLineLimit` pieces, whatever the input chunks. */
class StdioCollector {
  #parts: Array<Uint8Array> = []
  #size = 0
  push(part: Uint8Array, done: boolean): ReadonlyArray<Uint8Array> {
    const out: Array<Uint8Array> = []
    const flush = () => {
      out.push(Buffer.concat(this.#parts))
      this.#parts = []
      this.#size = 0
    }
    for (let rest = part; rest.length > 0;) {
      const take = Math.min(StdioLineLimit - this.#size, rest.length)
      this.#parts.push(rest.subarray(0, take))
      this.#size += take
      rest = rest.subarray(take)
      if (this.#size === StdioLineLimit) flush()
    }
    if (done && this.#size > 0) flush()
    return out
  }
}

const capturePrefixes = [Capture.MagicV1, Capture.Magic].map((magic) => Buffer.from(magic))

/** Holds the first bytes until it knows whether they start with a capture magic; then passes all. */
class PrefixSniffer {
  #held: Array<Uint8Array> = []
  #decided = false
  /** The capture format version, when the input is a capture. */
  version: 1 | 2 | undefined
  push(chunk: Uint8Array): Uint8Array | undefined {
    if (this.#decided) return chunk
    this.#held.push(chunk)
    const all = Buffer.concat(this.#held)
    return all.length < Capture.Magic.length ? undefined : this.#decide(all)
  }
  end(): Uint8Array {
    return this.#decided ? new Uint8Array(0) : this.#decide(Buffer.concat(this.#held))
  }
  #decide(all: Uint8Array): Uint8Array {
    this.#decided = true
    this.#held = []
    const found = capturePrefixes.findIndex((magic) => magic.equals(all.subarray(0, magic.length)))
    this.version = found < 0 ? undefined : found === 0 ? 1 : 2
    return this.version === undefined ? all : all.subarray(Capture.Magic.length)
  }
}

/**
 * Splits a capture file's records (the magic already taken off), streaming: each record's bytes are passed
 * on as they arrive, so memory does not depend on record sizes. Version 1 records are the bridge's.
 *
 * @since 0.1.0
 */
export class CaptureRecordReader {
  readonly #headerSize: number
  readonly #header: Uint8Array
  #headerFill = 0
  #left = 0
  #direction = 0
  #port = MessageType.LinuxGcsVsockPort
  #offset = Capture.Magic.length
  /** Nanoseconds since the capture began, of the record being read. */
  time = 0n
  error: CaptureFileError | undefined
  constructor(readonly version: 1 | 2 = 2) {
    this.#headerSize = version === 1 ? Capture.RecordHeaderSizeV1 : Capture.RecordHeaderSize
    this.#header = new Uint8Array(this.#headerSize)
  }
  /** Passes on each part of a record's bytes with its direction, time and port; `done` on its last part. */
  push(
    chunk: Uint8Array,
    onBytes: (direction: number, time: bigint, bytes: Uint8Array, port: number, done: boolean) => void
  ): void {
    let i = 0
    while (i < chunk.length && this.error === undefined) {
      if (this.#left > 0) {
        const part = chunk.subarray(i, i + this.#left)
        this.#left -= part.length
        i += part.length
        this.#offset += part.length
        onBytes(this.#direction, this.time, part, this.#port, this.#left === 0)
        continue
      }
      const take = Math.min(this.#headerSize - this.#headerFill, chunk.length - i)
      this.#header.set(chunk.subarray(i, i + take), this.#headerFill)
      this.#headerFill += take
      i += take
      if (this.#headerFill < this.#headerSize) continue
      const view = new DataView(this.#header.buffer)
      this.#direction = view.getUint8(0)
      this.time = view.getBigUint64(1, true)
      this.#left = view.getUint32(9, true)
      if (this.version === 2) this.#port = view.getUint32(13, true)
      this.#headerFill = 0
      if (this.#direction > 1) {
        this.error = new CaptureFileError({
          offset: this.#offset,
          message: `capture record at offset ${this.#offset} has direction ${this.#direction} (0 or 1 expected)`
        })
      }
      this.#offset += this.#headerSize
    }
  }
  /** The error the input ended with, if any: a record cut short. */
  end(): CaptureFileError | undefined {
    if (this.error === undefined && (this.#headerFill > 0 || this.#left > 0)) {
      this.error = new CaptureFileError({
        offset: this.#offset,
        message: `the capture ends inside a record (offset ${this.#offset})`
      })
    }
    return this.error
  }
}

/**
 * Decodes a whole capture held in memory (for tests and library use).
 *
 * @since 0.1.0
 */
export const decodeCaptureBytes = (
  bytes: Uint8Array,
  options: DecodeCaptureOptions = {}
): Effect.Effect<ReadonlyArray<CaptureReport>, HexInputError | CaptureFileError> =>
  Stream.runCollect(decodeCapture(Stream.make(bytes), options))
