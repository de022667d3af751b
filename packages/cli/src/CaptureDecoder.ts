/**
 * The engine of `gcsctl decode`: a captured bridge byte stream (either
 * direction, even both concatenated) in, one report per frame out. Each frame
 * is decoded with the Schema of its type; a body that fails its Schema is still
 * shown, raw, with the Schema's complaint. Damage is reported with its byte
 * offset and decoding resumes at the next plausible header.
 *
 * @since 0.1.0
 */
import { Container, Envelope, MessageType, Rpc } from "@gcs-bridge/protocol"
import { Effect, Result, Schema, Stream } from "effect"
import type { HexInputError } from "./CliError.js"
import { FrameScanner, type ScanEvent } from "./internal/frameScanner.js"
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
  readonly offset: number
  /** `Request(Create)`, `Response(ExecuteProcess)`, `Notify(Container)`, … */
  readonly type: string
  /** The type word in hex. */
  readonly typeWord: string
  /** The header id; a string when it exceeds 2^53 − 1. */
  readonly id: number | string
  /** Total size, header included. */
  readonly size: number
  /** The Schema-decoded body, or the raw JSON when `schemaError` is set. */
  readonly body: unknown
  /** Why the body does not match the Schema of its type. */
  readonly schemaError?: string
}

/**
 * Bytes that are not a frame, at `offset`.
 *
 * @since 0.1.0
 */
export interface DamageReport {
  readonly offset: number
  readonly error: "UnknownType" | "Undersize" | "Oversize" | "Truncated" | "InvalidJson" | "Unresynchronised"
  readonly message: string
  readonly type?: string
  readonly size?: number
}

/**
 * Decoding found a plausible header again at `offset`, `skipped` bytes after the damage.
 *
 * @since 0.1.0
 */
export interface ResyncReport {
  readonly offset: number
  readonly resynchronised: true
  readonly skipped: number
}

/**
 * One line of `gcsctl decode` output.
 *
 * @since 0.1.0
 */
export type CaptureReport = FrameReport | DamageReport | ResyncReport

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

type AnyDecoder = Schema.Decoder<unknown>

const schemaOf = (type: number): AnyDecoder | undefined => {
  const cls = MessageType.classOf(type)
  if (type >>> 0 === MessageType.NotifyContainer) return Container.ContainerNotification as AnyDecoder
  const name = MessageType.procName(MessageType.procOf(type))
  if (cls === MessageType.MessageClass.Request && name !== undefined)
    return Rpc.Rpcs[name].request as AnyDecoder
  if (cls === MessageType.MessageClass.Response) {
    return (name === undefined ? Envelope.ResponseBase : Rpc.Rpcs[name].response) as AnyDecoder
  }
  return undefined
}

const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`

/**
 * Plain JSON data from a decoded value: class instances become their fields,
 * bigints decimal strings, byte arrays hex.
 */
const toJsonData = (value: unknown): unknown =>
  JSON.parse(
    JSON.stringify(value, (_key, v: unknown) =>
      typeof v === "bigint"
        ? v.toString()
        : v instanceof Uint8Array
          ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")
          : v
    )
  )

const frameReport = (event: Extract<ScanEvent, { _tag: "Frame" }>): FrameReport => {
  const base = {
    offset: event.offset,
    type: MessageType.typeName(event.type),
    typeWord: hex32(event.type),
    id: event.id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(event.id) : event.id.toString(),
    size: event.size
  }
  const schema = schemaOf(event.type)
  if (schema === undefined) return { ...base, body: event.json }
  return Result.match(Schema.decodeUnknownResult(schema)(event.json), {
    onFailure: (error) => ({ ...base, body: event.json, schemaError: error.message }),
    onSuccess: (body) => ({ ...base, body: toJsonData(body) })
  })
}

const toReport = (event: ScanEvent): CaptureReport => {
  switch (event._tag) {
    case "Frame":
      return frameReport(event)
    case "Damage": {
      const report: DamageReport = { offset: event.offset, error: event.reason, message: event.message }
      return {
        ...report,
        ...(event.type === undefined ? {} : { type: MessageType.typeName(event.type) }),
        ...(event.size === undefined ? {} : { size: event.size })
      }
    }
    case "Resync":
      return { offset: event.offset, resynchronised: true, skipped: event.skipped }
    case "Lost":
      return {
        offset: event.offset,
        error: "Unresynchronised",
        message: `no plausible frame header in the last ${event.bytes} byte(s); cannot resynchronise`
      }
  }
}

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
): Stream.Stream<CaptureReport, E | HexInputError, R> =>
  Stream.suspend(() => {
    const scanner = new FrameScanner({
      maxFrameSize: options.maxFrameSize ?? CaptureFrameLimit,
      isKnownType
    })
    const hex = options.hex === true ? new HexDecoder() : undefined
    const bytes: Stream.Stream<Uint8Array, E | HexInputError, R> =
      hex === undefined
        ? input
        : Stream.concat(
            Stream.mapEffect(input, (chunk) => Effect.fromResult(hex.push(chunk))),
            Stream.fromEffectDrain(Effect.suspend(() => Effect.fromResult(hex.end())))
          )
    return Stream.concat(
      Stream.flattenIterable(Stream.map(bytes, (chunk) => scanner.push(chunk))),
      Stream.suspend(() => Stream.fromIterable(scanner.end()))
    ).pipe(Stream.map(toReport))
  })

/**
 * Decodes a whole capture held in memory (for tests and library use).
 *
 * @since 0.1.0
 */
export const decodeCaptureBytes = (
  bytes: Uint8Array,
  options: DecodeCaptureOptions = {}
): Effect.Effect<ReadonlyArray<CaptureReport>, HexInputError> =>
  Stream.runCollect(decodeCapture(Stream.make(bytes), options))
