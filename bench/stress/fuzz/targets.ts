/**
 * What one fuzz input is fed to, and what must hold afterwards.
 *
 * Frame inputs: a byte stream of 1-3 (mutated) vector frames, chunked at
 * random, through `FrameReader`; every frame it returns must be exactly the
 * bytes the stream's headers announce, it must stop with a `ProtocolError`
 * where the stream stops making sense and never otherwise, and its offset must
 * account for every byte. A sample also goes through the `decodeFrames`
 * channel, which must agree with the reader.
 *
 * Body inputs: a (mutated or generated) payload through every decoder a peer
 * feeds with guest bytes: `parsePayload`, `decodeResponse` of the frame's
 * procedure and of another, `decodeResponseBase`, `decodeNotification`,
 * `decodePropertiesV1/V2` and, for requests, the guest's `decodeRequest`.
 * Each must return a `Result` whose failure is a `ProtocolError`; none may throw.
 */
import type { Frame } from "@gcs-bridge/protocol"
import { Codec, FrameDecoder, MessageType, ProtocolError } from "@gcs-bridge/protocol"
import { Cause, Effect, Exit, Option, Result, Stream } from "effect"
import type { Corpus } from "./corpus.js"
import { chunk, concat, mutateBytes, mutateFrame, mutateJson, randomJson } from "./mutate.js"
import { Rng } from "./rng.js"

/** A problem found by one input. */
export interface Finding {
  readonly target: string
  readonly kind: "throw" | "invariant"
  readonly message: string
  /** The offending input, hex (cut to 4 KiB). */
  readonly inputHex: string
}

/** Calls made and how they ended, per decoder. */
export type Tally = Record<string, { calls: number; success: number; failure: number }>

const count = (tally: Tally, target: string, success: boolean) => {
  const t = (tally[target] ??= { calls: 0, success: 0, failure: 0 })
  t.calls++
  if (success) t.success++
  else t.failure++
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes.subarray(0, 4096)).toString("hex")

const u32 = (b: Uint8Array, i: number) =>
  (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0

const headerReasons = new Set(["Oversize", "Undersize", "UnknownType"])

/** Checks the reader's frames against the headers in `bytes`; returns the offset just past the last frame. */
const walk = (bytes: Uint8Array, frames: ReadonlyArray<Frame.Frame>): { end: number; problem?: string } => {
  let at = 0
  for (const [k, f] of frames.entries()) {
    if (at + 16 > bytes.length) return { end: at, problem: `frame ${k} starts at ${at}, past the input` }
    const type = u32(bytes, at)
    const size = u32(bytes, at + 4)
    const id = u32(bytes, at + 8) + u32(bytes, at + 12) * 0x100000000
    if (f.type !== type || f.id !== id)
      return { end: at, problem: `frame ${k}: header ${type}/${id} read as ${f.type}/${f.id}` }
    if (f.payload.length !== size - 16)
      return { end: at, problem: `frame ${k}: size ${size} but payload ${f.payload.length}` }
    if (at + size > bytes.length || Buffer.compare(f.payload, bytes.subarray(at + 16, at + size)) !== 0) {
      return { end: at, problem: `frame ${k}: payload bytes differ from the input` }
    }
    at += size
  }
  return { end: at }
}

const sameFrames = (a: ReadonlyArray<Frame.Frame>, b: ReadonlyArray<Frame.Frame>) =>
  a.length === b.length &&
  a.every(
    (f, i) => f.type === b[i]!.type && f.id === b[i]!.id && Buffer.compare(f.payload, b[i]!.payload) === 0
  )

/** One frame-stream input. `viaChannel` also runs it through `decodeFrames`. */
export const frameInput = (
  rng: Rng,
  corpus: Corpus,
  viaChannel: boolean,
  tally: Tally
): Finding | undefined => {
  const parts: Array<Uint8Array> = []
  const n = 1 + rng.int(3)
  for (let k = 0; k < n; k++) {
    const seed = rng.pick(corpus.all).frame
    parts.push(rng.chance(0.8) ? mutateFrame(rng, seed, rng.pick(corpus.all).frame) : seed)
  }
  let bytes = concat(parts)
  if (rng.chance(0.15)) bytes = mutateBytes(rng, bytes)
  const chunks = chunk(rng, bytes)
  const maxFrameSize = rng.chance(0.8) ? undefined : rng.pick([16, 17, 100, 0x10000, 1 << 20])
  const acceptAll = rng.chance(0.2)
  const options = { maxFrameSize, ...(acceptAll ? { acceptType: () => true } : {}) }
  const fail = (message: string): Finding => ({
    target: "FrameReader",
    kind: "invariant",
    message,
    inputHex: hex(bytes)
  })

  let frames: Array<Frame.Frame> = []
  let end: ProtocolError.ProtocolError | undefined
  let reader: FrameDecoder.FrameReader
  try {
    reader = new FrameDecoder.FrameReader(options)
    for (const c of chunks) for (const f of reader.push(c)) frames.push(f)
    end = reader.end()
  } catch (e) {
    return { target: "FrameReader", kind: "throw", message: String(e), inputHex: hex(bytes) }
  }
  count(tally, "FrameReader", end === undefined)
  const walked = walk(bytes, frames)
  if (walked.problem !== undefined) return fail(walked.problem)
  if (end === undefined) {
    if (walked.end !== bytes.length)
      return fail(`no error, but ${bytes.length - walked.end} bytes were never returned`)
    if (reader.offset !== bytes.length || reader.buffered !== 0)
      return fail(`offset ${reader.offset}, buffered ${reader.buffered} after a clean end`)
  } else {
    if (!(end instanceof ProtocolError.ProtocolError)) return fail(`end() gave ${String(end)}`)
    if (walked.end >= bytes.length && end.reason !== "Truncated")
      return fail(`${end.reason} at the end of a complete stream`)
    if (headerReasons.has(end.reason) && (end.offset !== walked.end || reader.offset !== walked.end)) {
      return fail(
        `${end.reason} reported at ${end.offset}, reader at ${reader.offset}, bad header at ${walked.end}`
      )
    }
    if (end.reason === "Oversize" && u32(bytes, walked.end + 4) <= reader.maxFrameSize)
      return fail("Oversize for a size within the limit")
    if (end.reason === "Undersize" && u32(bytes, walked.end + 4) >= 16)
      return fail("Undersize for a size of at least 16")
  }

  if (viaChannel) {
    const exit = Effect.runSyncExit(
      Stream.fromIterable(chunks).pipe(
        Stream.pipeThroughChannel(FrameDecoder.decodeFrames(options)),
        Stream.runCollect
      )
    )
    count(tally, "decodeFrames", Exit.isSuccess(exit))
    if (Exit.isSuccess(exit)) {
      if (end !== undefined)
        return {
          ...fail(`decodeFrames succeeded where FrameReader gave ${end.reason}`),
          target: "decodeFrames"
        }
      if (!sameFrames(exit.value, frames))
        return { ...fail("decodeFrames frames differ from FrameReader's"), target: "decodeFrames" }
    } else {
      const failure = Option.getOrUndefined(Cause.findErrorOption(exit.cause))
      if (!(failure instanceof ProtocolError.ProtocolError)) {
        return {
          target: "decodeFrames",
          kind: "throw",
          message: `not a ProtocolError failure: ${String(exit.cause)}`,
          inputHex: hex(bytes)
        }
      }
      if (end === undefined || failure.reason !== end.reason) {
        return {
          ...fail(`decodeFrames failed with ${failure.reason}, FrameReader with ${end?.reason ?? "nothing"}`),
          target: "decodeFrames"
        }
      }
    }
  }
  frames = []
  return undefined
}

const utf8 = new TextEncoder()

/** Runs one decoder call and checks its contract. */
const call = (tally: Tally, target: string, payload: Uint8Array, run: () => unknown): Finding | undefined => {
  let result: unknown
  try {
    result = run()
  } catch (e) {
    return {
      target,
      kind: "throw",
      message: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
      inputHex: hex(payload)
    }
  }
  if (!Result.isResult(result))
    return { target, kind: "invariant", message: "did not return a Result", inputHex: hex(payload) }
  count(tally, target, Result.isSuccess(result))
  if (Result.isFailure(result) && !(result.failure instanceof ProtocolError.ProtocolError)) {
    return {
      target,
      kind: "invariant",
      message: `failure is not a ProtocolError: ${String(result.failure)}`,
      inputHex: hex(payload)
    }
  }
  return undefined
}

/** One body input; every decoder that broke its contract gives a finding. */
export const bodyInput = (rng: Rng, corpus: Corpus, tally: Tally): ReadonlyArray<Finding> => {
  const inbound = rng.chance(0.6)
  const seed = rng.pick(inbound ? corpus.inbound : corpus.requests)
  let payload: Uint8Array
  switch (rng.int(7)) {
    case 0:
    case 1:
    case 2:
      payload = utf8.encode(mutateJson(rng, seed.json))
      break
    case 3:
      payload = mutateBytes(rng, seed.payload)
      break
    case 4:
      payload = mutateBytes(rng, utf8.encode(mutateJson(rng, seed.json)))
      break
    case 5:
      payload = utf8.encode(JSON.stringify(randomJson(rng, 4)) ?? "null")
      break
    default: {
      // A generated body around a plausible base, so decoding gets past the first fields.
      const base = {
        Result: rng.chance(0.8) ? 0 : rng.u32() | 0,
        ActivityId: "00000000-0000-0000-0000-000000000000"
      }
      const extra = randomJson(rng, 3)
      payload = utf8.encode(
        JSON.stringify(
          typeof extra === "object" && extra !== null && !Array.isArray(extra) ? { ...base, ...extra } : base
        )
      )
    }
  }

  const own: MessageType.ProcName =
    seed.proc === "ContainerNotification" ? rng.pick(MessageType.procNames) : seed.proc
  const other: MessageType.ProcName = rng.pick(MessageType.procNames)
  const findings = [
    call(tally, "parsePayload", payload, () => Codec.parsePayload(payload)),
    inbound ? call(tally, `decodeResponse`, payload, () => Codec.decodeResponse(own, payload)) : undefined,
    call(tally, `decodeResponse`, payload, () => Codec.decodeResponse(other, payload)),
    call(tally, "decodeResponseBase", payload, () => Codec.decodeResponseBase(payload)),
    call(tally, "decodeNotification", payload, () => Codec.decodeNotification(payload)),
    inbound
      ? undefined
      : call(tally, "decodeRequest", payload, () =>
          Codec.decodeRequest({ type: rng.chance(0.9) ? seed.type : rng.u32(), id: rng.u32(), payload })
        )
  ]
  // GetProperties documents are decoded a second time, from the parsed `Properties` value.
  const parsed = Codec.parsePayload(payload)
  if (Result.isSuccess(parsed) && typeof parsed.success === "object" && parsed.success !== null) {
    const properties = (parsed.success as Record<string, unknown>)["Properties"] ?? randomJson(rng, 3)
    findings.push(
      call(tally, "decodePropertiesV1", payload, () => Codec.decodePropertiesV1(properties)),
      call(tally, "decodePropertiesV2", payload, () => Codec.decodePropertiesV2(properties))
    )
  }
  return findings.filter((f): f is Finding => f !== undefined)
}

/** Findings that share a target, a kind and a message (numbers aside). */
export interface FindingGroup extends Finding {
  readonly signature: string
  count: number
  /** The first input that produced it. */
  readonly index: number
}

/** The signature grouping a finding: its target, kind and message with numbers blanked. */
export const signatureOf = (f: Finding): string =>
  `${f.target} ${f.kind} ${f.message.replace(/[0-9]+/g, "#")}`

/** Whether input `index` is a frame input (the rest are body inputs): two in five. */
export const isFrameInput = (index: number): boolean => index % 5 < 2

/** Input `index` of `seed`, rebuilt and run; a frame input also goes through the channel when `viaChannel`. */
export const runInput = (
  seed: number,
  index: number,
  corpus: Corpus,
  viaChannel: boolean,
  tally: Tally
): ReadonlyArray<Finding> => {
  const rng = new Rng(seed, index)
  if (!isFrameInput(index)) return bodyInput(rng, corpus, tally)
  const finding = frameInput(rng, corpus, viaChannel, tally)
  return finding === undefined ? [] : [finding]
}
