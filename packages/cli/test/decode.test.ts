import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import {
  type CaptureReport,
  decodeCapture,
  decodeCaptureBytes,
  type DamageReport,
  type FrameReport
} from "../src/CaptureDecoder.js"
import { HexInputError } from "../src/CliError.js"
import { invoke } from "./harness.js"

interface Vector {
  readonly name: string
  readonly direction: string
  readonly onWire: boolean
  readonly msgType: number
  readonly msgTypeName: string
  readonly id: number
  readonly size: number
  readonly json: string
  readonly frameHex: string
}

const vectors: ReadonlyArray<Vector> = JSON.parse(
  // The protocol package keeps a verbatim copy of the Go vectors, so a clone tests without shared/.
  readFileSync(new URL("../../protocol/test/vectors/go-wire-vectors.json", import.meta.url), "utf8")
) as ReadonlyArray<Vector>

const frames = vectors.map((v) => Buffer.from(v.frameHex, "hex"))
const capture = Buffer.concat(frames)
const offsets = frames.reduce<Array<number>>(
  (acc, _frame, i) => [...acc, i === 0 ? 0 : acc[i - 1]! + frames[i - 1]!.length],
  []
)

const isFrame = (r: CaptureReport): r is FrameReport => "body" in r
const isDamage = (r: CaptureReport): r is DamageReport => "error" in r

const expectVectorFrame = (report: CaptureReport | undefined, index: number) => {
  const v = vectors[index]!
  expect(report).toBeDefined()
  expect(isFrame(report!)).toBe(true)
  const frame = report as FrameReport
  expect(frame.offset).toBe(offsets[index])
  expect(frame.type).toBe(v.msgTypeName)
  expect(frame.id).toBe(v.id)
  expect(frame.size).toBe(v.size)
}

/** Splits `bytes` at the given cut points. */
const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): ReadonlyArray<Uint8Array> => {
  const sorted = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let at = 0
  for (const cut of sorted) {
    out.push(bytes.subarray(at, cut))
    at = cut
  }
  out.push(bytes.subarray(at))
  return out
}

const decodeChunks = (chunks: ReadonlyArray<Uint8Array>, hex = false) =>
  Stream.runCollect(decodeCapture(Stream.fromIterable(chunks), { hex }))

describe("decode: the Go wire vectors", () => {
  it.effect("every frame of the concatenated vectors decodes, in order, with type, id, size", () =>
    Effect.gen(function* () {
      const reports = yield* decodeCaptureBytes(capture)
      expect(reports).toHaveLength(vectors.length)
      reports.forEach((report, i) => expectVectorFrame(report, i))
    })
  )

  it.effect("bodies are Schema-decoded by their type (frames the Go code sends)", () =>
    Effect.gen(function* () {
      const reports = (yield* decodeCaptureBytes(capture)) as ReadonlyArray<FrameReport>
      // The one frame the Go host cannot decode either (hostDecoded: "invalid character 'e'"):
      // a ResultInfo that is not JSON-in-a-string. It is shown raw, with the reason.
      const undecodable =
        "ContainerNotification: graceful exit with ResultInfo and non-zero Result (synthetic values)"
      vectors.forEach((v, i) => {
        if (!v.onWire || v.name === undecodable) return
        expect({ name: v.name, schemaError: reports[i]!.schemaError }).toEqual({ name: v.name })
      })
      const rejected = reports[vectors.findIndex((v) => v.name === undecodable)]!
      expect(rejected.schemaError).toContain("ResultInfo")
      expect(rejected.body).toMatchObject({ ResultInfo: "exit status 1" })
      // A JSON-in-string field comes out decoded: the ProcessParameters of an ExecuteProcess request,
      // with the fields the host wrote and none of the Schema's zero values (no `CommandLine: ""`).
      const exec = reports.find((r) => r.type === "Request(ExecuteProcess)")!
      expect(exec.body).toMatchObject({
        Settings: { ProcessParameters: { CommandArgs: ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"] } }
      })
      expect(JSON.stringify(exec.body)).not.toContain("CommandArgs\\")
      expect(JSON.stringify(exec.body)).not.toContain("CommandLine")
    })
  )

  it.effect("the result does not depend on how the stream is chunked", () =>
    Effect.gen(function* () {
      const whole = yield* decodeCaptureBytes(capture)
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(fc.nat(), { maxLength: 40 }), async (cuts) => {
            const parts = await Effect.runPromise(decodeChunks(split(capture, cuts)))
            expect(parts).toEqual(whole)
          }),
          { numRuns: 30 }
        )
      )
    })
  )

  it.effect("hex input with whitespace anywhere, split mid-digit, gives the same frames", () =>
    Effect.gen(function* () {
      const hex = capture.toString("hex").replace(/(.{7})/g, "$1 \n\t")
      const text = Buffer.from(hex, "utf8")
      const reports = yield* decodeChunks(split(text, [1, 2, 3, 1001, 4097]), true)
      expect(reports).toEqual(yield* decodeCaptureBytes(capture))
    })
  )
})

describe("decode: damage", () => {
  const middle = 30

  it.effect(
    "a frame with a corrupted type word is reported at its offset and the frames after it still decode",
    () =>
      Effect.gen(function* () {
        const damaged = Buffer.from(capture)
        damaged.writeUInt32LE(0xdeadbeef, offsets[middle]!)
        const reports = yield* decodeCaptureBytes(damaged)
        reports.slice(0, middle).forEach((r, i) => expectVectorFrame(r, i))
        expect(reports[middle]).toMatchObject({
          offset: offsets[middle],
          error: "UnknownType",
          bytes: frames[middle]!.length,
          count: 1,
          resynchronised: true
        })
        expect((reports[middle] as DamageReport).message).toContain("0xdeadbeef")
        reports.slice(middle + 1).forEach((r, i) => expectVectorFrame(r, middle + 1 + i))
        expect(reports).toHaveLength(vectors.length)
      })
  )

  it.effect(
    "a size field that swallows part of the next frame is caught by its payload and the next frame is kept",
    () =>
      Effect.gen(function* () {
        const damaged = Buffer.from(capture)
        damaged.writeUInt32LE(frames[middle]!.length + 7, offsets[middle]! + 4)
        const reports = yield* decodeCaptureBytes(damaged)
        expect(reports[middle]).toMatchObject({
          offset: offsets[middle],
          error: "InvalidJson",
          bytes: frames[middle]!.length,
          resynchronised: true
        })
        reports.slice(middle + 1).forEach((r, i) => expectVectorFrame(r, middle + 1 + i))
      })
  )

  it.effect("an impossible size is reported as Oversize / Undersize", () =>
    Effect.gen(function* () {
      const big = Buffer.from(capture)
      big.writeUInt32LE(0x7fffffff, offsets[middle]! + 4)
      expect((yield* decodeCaptureBytes(big))[middle]).toMatchObject({
        offset: offsets[middle],
        error: "Oversize"
      })
      const small = Buffer.from(capture)
      small.writeUInt32LE(3, offsets[middle]! + 4)
      expect((yield* decodeCaptureBytes(small))[middle]).toMatchObject({
        offset: offsets[middle],
        error: "Undersize"
      })
    })
  )

  it.effect("garbage between frames is skipped and counted", () =>
    Effect.gen(function* () {
      const junk = Buffer.from("not a frame at all, just some text\u0001\u0010\u0010")
      const damaged = Buffer.concat([frames[0]!, junk, frames[1]!])
      const reports = yield* decodeCaptureBytes(damaged)
      expect(reports).toHaveLength(3)
      expect(reports[1]).toMatchObject({
        offset: frames[0]!.length,
        error: "UnknownType",
        bytes: junk.length,
        count: 1,
        resynchronised: true
      })
      expect(reports[2]).toMatchObject({
        offset: frames[0]!.length + junk.length,
        type: vectors[1]!.msgTypeName
      })
    })
  )

  it.effect("a truncated last frame is reported, and so is the failure to resynchronise", () =>
    Effect.gen(function* () {
      const cut = capture.subarray(0, capture.length - 10)
      const reports = yield* decodeCaptureBytes(cut)
      const last = vectors.length - 1
      reports.slice(0, last).forEach((r, i) => expectVectorFrame(r, i))
      expect(reports[last]).toEqual({
        offset: offsets[last],
        error: "Truncated",
        message: `the header says ${vectors[last]!.size} bytes but the input ends after ${vectors[last]!.size - 10}`,
        type: vectors[last]!.msgTypeName,
        size: vectors[last]!.size,
        bytes: vectors[last]!.size - 10,
        count: 1,
        resynchronised: false
      })
      expect(reports).toHaveLength(last + 1)
    })
  )

  it.effect("trailing garbage that holds no header is reported as not resynchronisable", () =>
    Effect.gen(function* () {
      const reports = yield* decodeCaptureBytes(Buffer.concat([frames[0]!, Buffer.alloc(100, 0xff)]))
      expect(reports.filter(isDamage)).toEqual([
        expect.objectContaining({
          offset: frames[0]!.length,
          error: "UnknownType",
          bytes: 100,
          resynchronised: false
        })
      ])
    })
  )

  it.effect("a body that fails its Schema is shown raw with the Schema's complaint", () =>
    Effect.gen(function* () {
      const payload = Buffer.from('{"Result":"not a number","ActivityId":"x"}')
      const header = Buffer.alloc(16)
      header.writeUInt32LE(0x20100101, 0)
      header.writeUInt32LE(16 + payload.length, 4)
      header.writeBigUInt64LE(7n, 8)
      const [report] = yield* decodeCaptureBytes(Buffer.concat([header, payload]))
      expect(report).toMatchObject({ type: "Response(Create)", id: 7, body: { Result: "not a number" } })
      expect((report as FrameReport).schemaError).toEqual(expect.any(String))
    })
  )

  it.effect("hex input that is not hex fails with the character offset", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decodeChunks([Buffer.from("01 0b\n1g")], true))
      expect(error).toBeInstanceOf(HexInputError)
      expect(error).toMatchObject({ offset: 7 })
      const odd = yield* Effect.flip(decodeChunks([Buffer.from("010")], true))
      expect(odd.message).toContain("odd number")
    })
  )
})

describe("gcsctl decode", () => {
  it.effect("prints one JSON line per frame and exits 0 on a clean capture", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["decode"], { stdin: split(capture, [100, 5000]) })
      expect(outcome.status).toBe(0)
      expect(outcome.stderr).toBe("")
      const lines = outcome.stdout.trimEnd().split("\n")
      expect(lines).toHaveLength(vectors.length)
      expect(JSON.parse(lines[0]!)).toMatchObject({
        offset: 0,
        type: "Request(NegotiateProtocol)",
        id: 0,
        size: 125
      })
    })
  )

  it.effect("--hex: damage gives its JSON line, one summary line on stderr and exit status 1", () =>
    Effect.gen(function* () {
      const damaged = Buffer.from(capture)
      damaged.writeUInt32LE(0xdeadbeef, offsets[5]!)
      const outcome = yield* invoke(["decode", "--hex"], { stdin: [damaged.toString("hex")] })
      expect(outcome.status).toBe(1)
      const lines = outcome.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as CaptureReport)
      expect(lines[5]).toMatchObject({ offset: offsets[5], error: "UnknownType" })
      expect(lines.filter(isFrame)).toHaveLength(vectors.length - 1)
      expect(outcome.stderr.trimEnd().split("\n")).toEqual([
        `gcsctl decode: 1 damaged region(s), the first at offset ${offsets[5]}; decoding resynchronised after each`
      ])
    })
  )

  it.effect("--hex with a bad character: one line on stderr, exit 1, no trace", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["decode", "--hex"], { stdin: ["01zz"] })
      expect(outcome.status).toBe(1)
      expect(outcome.stderr).toBe(
        "gcsctl decode: bad hex input: 'z' at character 2 is not a hex digit or whitespace\n"
      )
    })
  )
})
