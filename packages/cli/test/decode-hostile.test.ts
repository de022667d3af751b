/**
 * `gcsctl decode` on captures written to hurt it: millions of damaged regions,
 * headers that each claim the largest frame, bodies nested millions deep,
 * strings that would drive a terminal. Output stays proportional to the good
 * frames, nothing throws, and what reaches the terminal is inert.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { readFileSync } from "node:fs"
import {
  type CaptureReport,
  decodeCapture,
  decodeCaptureBytes,
  type DamageReport,
  type FrameReport,
  isDamage
} from "../src/CaptureDecoder.js"
import { invoke } from "./harness.js"

const CreateResponse = 0x20100101
const NotifyContainer = 0x30100101
const NullGuid = "00000000-0000-0000-0000-000000000000"

const frame = (type: number, id: number, payload: string | Uint8Array): Buffer => {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload)
  const header = Buffer.alloc(16)
  header.writeUInt32LE(type, 0)
  header.writeUInt32LE(16 + body.length, 4)
  header.writeBigUInt64LE(BigInt(id), 8)
  return Buffer.concat([header, body])
}

const good = frame(CreateResponse, 7, '{"Result":0}')

/**
 * A plausible header (known type, sane size, `{` next) whose payload holds a
 * raw control byte: each one is a candidate frame the scanner must refuse.
 */
const candidate = (claimedSize: number): Buffer => {
  const bytes = Buffer.alloc(18)
  bytes.writeUInt32LE(CreateResponse, 0)
  bytes.writeUInt32LE(claimedSize, 4)
  bytes[16] = 0x7b
  bytes[17] = 0x00
  return bytes
}

const isFrame = (r: CaptureReport): r is FrameReport => !isDamage(r)

/** Counts the reports of a capture without keeping them. */
const tally = (chunks: ReadonlyArray<Uint8Array>) =>
  decodeCapture(Stream.fromIterable(chunks)).pipe(
    Stream.runFold(
      () => ({ frames: 0, regions: 0, badHeaders: 0, unresynchronised: 0 }),
      (acc, r) => {
        if (isDamage(r)) {
          acc.regions++
          acc.badHeaders += r.count
          if (!r.resynchronised) acc.unresynchronised++
        } else acc.frames++
        return acc
      }
    )
  )

/** Splits a buffer into 64 KiB chunks, as stdin delivers it. */
const chunked = (bytes: Buffer): ReadonlyArray<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += 65536) out.push(bytes.subarray(at, at + 65536))
  return out
}

describe("decode: damage is reported per region", () => {
  it.effect("200k damaged regions between valid frames: one line per frame, one per region", () =>
    Effect.gen(function* () {
      const units = 200_000
      // Even regions: one stray byte; odd ones: two refused candidate frames and a stray byte.
      const simple = Buffer.concat([good, Buffer.from([0xff])])
      const nasty = Buffer.concat([good, candidate(64), candidate(64), Buffer.from([0xff])])
      const capture = Buffer.concat(Array.from({ length: units }, (_, i) => (i % 2 === 0 ? simple : nasty)))
      const counts = yield* tally(chunked(capture))
      expect(counts).toEqual({
        frames: units,
        regions: units,
        // Every bad header is counted, though it gets no line of its own.
        badHeaders: units / 2 + 2 * (units / 2),
        unresynchronised: 1
      })
      // Bounded by the good frames: each region ends at a good frame or the end of the input.
      expect(counts.regions).toBeLessThanOrEqual(counts.frames + 1)
    })
  )

  it.effect("consecutive bad headers are one region with their byte range and count", () =>
    Effect.gen(function* () {
      const junk = Buffer.concat(Array.from({ length: 1000 }, () => candidate(64)))
      const reports = yield* decodeCaptureBytes(Buffer.concat([good, junk, good]))
      expect(reports).toHaveLength(3)
      expect(reports[1]).toEqual({
        offset: good.length,
        error: "InvalidJson",
        message: "payload is not JSON: control byte 0x00 at payload offset 1",
        type: "Response(Create)",
        size: 64,
        bytes: junk.length,
        count: 1000,
        resynchronised: true
      })
      expect(reports[2]).toMatchObject({ offset: good.length + junk.length, id: 7, body: { Result: 0 } })
    })
  )

  it.effect("headers that each claim a large frame are refused at their first impossible byte", () =>
    Effect.gen(function* () {
      // 60k candidates, each claiming 512 KiB of what follows: parsing each claim
      // would be 30 GB of work; refusing at the first control byte is linear.
      const junk = Buffer.concat(Array.from({ length: 60_000 }, () => candidate(512 * 1024)))
      const counts = yield* tally(chunked(Buffer.concat([good, junk, good])))
      expect(counts).toEqual({ frames: 2, regions: 1, badHeaders: 60_000, unresynchronised: 0 })
    })
  )

  it.effect("gcsctl decode: stdout has one line per frame and per region, stderr one summary", () =>
    Effect.gen(function* () {
      const units = 2000
      const unit = Buffer.concat([good, candidate(64), candidate(64), Buffer.from("\u001b[2J")])
      const capture = Buffer.concat([...Array.from({ length: units }, () => unit), good])
      const outcome = yield* invoke(["decode"], { stdin: chunked(capture) })
      expect(outcome.status).toBe(1)
      const lines = outcome.stdout.trimEnd().split("\n")
      const reports = lines.map((l) => JSON.parse(l) as CaptureReport)
      expect(reports.filter(isFrame)).toHaveLength(units + 1)
      expect(reports.filter(isDamage)).toHaveLength(units)
      expect(lines).toHaveLength(units + 1 + units)
      expect(reports[1]).toMatchObject({ error: "InvalidJson", count: 2, bytes: unit.length - good.length })
      expect(outcome.stderr).toBe(
        `gcsctl decode: ${units} damaged region(s), the first at offset ${good.length}; decoding resynchronised after each\n`
      )
    })
  )
})

describe("decode: nesting", () => {
  const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

  it.effect("a body nested 200k deep gives the protocol's typed error, and decoding goes on", () =>
    Effect.gen(function* () {
      const nested = frame(CreateResponse, 1, `{"Result":${deep(200_000)}}`)
      const after = frame(CreateResponse, 2, '{"Result":0}')
      const reports = yield* decodeCaptureBytes(Buffer.concat([nested, after]))
      expect(reports).toHaveLength(2)
      const report = reports[0] as FrameReport
      expect(report).toMatchObject({ offset: 0, type: "Response(Create)", id: 1, size: nested.length })
      // The Codec's InvalidBody, as the bridge would have refused the frame.
      expect(report.schemaError).toMatch(/^Create response: .*Result/s)
      expect(report).not.toHaveProperty("body")
      expect(report.bodyOmitted).toContain("nests deeper than 1000 levels")
      expect(reports[1]).toMatchObject({ offset: nested.length, id: 2, body: { Result: 0 } })
    })
  )

  it.effect("a body the Schema accepts but nested too deep to print is omitted, not a crash", () =>
    Effect.gen(function* () {
      // ResultInfo is any JSON document, in a string.
      const info = JSON.stringify(deep(100_000))
      const payload = `{"ContainerId":"c","ActivityId":"${NullGuid}","Type":"GracefulExit","Operation":"None","Result":0,"ResultInfo":${info}}`
      const reports = yield* decodeCaptureBytes(Buffer.concat([frame(NotifyContainer, 0, payload), good]))
      expect(reports[0]).toMatchObject({ type: "Notify(Container)", bodyOmitted: expect.any(String) })
      expect(reports[0]).not.toHaveProperty("schemaError")
      expect(reports[1]).toMatchObject({ id: 7, body: { Result: 0 } })
    })
  )

  it.effect(
    "gcsctl decode: the nested frame is one line and the next frame follows (no internal error)",
    () =>
      Effect.gen(function* () {
        const nested = frame(CreateResponse, 1, `{"Result":${deep(200_000)}}`)
        const outcome = yield* invoke(["decode"], { stdin: chunked(Buffer.concat([nested, good])) })
        expect(outcome.stderr).toBe("")
        expect(outcome.status).toBe(0)
        const lines = outcome.stdout.trimEnd().split("\n")
        expect(lines).toHaveLength(2)
        expect(JSON.parse(lines[0]!)).toMatchObject({ id: 1, schemaError: expect.any(String) })
        expect(JSON.parse(lines[1]!)).toMatchObject({ id: 7, body: { Result: 0 } })
      })
  )
})

interface Vector {
  readonly onWire: boolean
  readonly json: string
  readonly frameHex: string
}

const vectors: ReadonlyArray<Vector> = JSON.parse(
  readFileSync(new URL("../../protocol/test/vectors/go-wire-vectors.json", import.meta.url), "utf8")
) as ReadonlyArray<Vector>

/** The keys of every object in a JSON value, by path (JSON-in-string documents opened). */
const keyPaths = (value: unknown, path = "$", out: Array<string> = []): Array<string> => {
  if (typeof value === "string" && /^[[{]/.test(value)) {
    try {
      return keyPaths(JSON.parse(value), path, out)
    } catch {
      return out
    }
  }
  if (Array.isArray(value)) value.forEach((v, i) => keyPaths(v, `${path}[${i}]`, out))
  else if (typeof value === "object" && value !== null)
    for (const [k, v] of Object.entries(value)) {
      out.push(`${path}.${k}`)
      keyPaths(v, `${path}.${k}`, out)
    }
  return out
}

describe("decode: what was on the wire", () => {
  it.effect("a frame without otsc prints no otsc key", () =>
    Effect.gen(function* () {
      const payload = `{"ContainerId":"c","ActivityId":"${NullGuid}","ProcessId":12,"TimeoutInMs":1000}`
      const outcome = yield* invoke(["decode"], { stdin: [frame(0x10100601, 3, payload)] })
      expect(outcome.status).toBe(0)
      const report = JSON.parse(outcome.stdout) as FrameReport
      expect(report).toMatchObject({ type: "Request(WaitForProcess)", id: 3 })
      expect(report.body).toEqual(JSON.parse(payload))
      expect(outcome.stdout).not.toContain("otsc")
    })
  )

  it.effect("every Go vector prints exactly the fields it had on the wire, null included", () =>
    Effect.gen(function* () {
      for (const v of vectors.filter((x) => x.onWire)) {
        const [report] = yield* decodeCaptureBytes(Buffer.from(v.frameHex, "hex"))
        expect({ json: v.json, keys: keyPaths((report as FrameReport).body) }).toEqual({
          json: v.json,
          keys: keyPaths(JSON.parse(v.json))
        })
      }
      const withNull = `{"ContainerId":"c","ActivityId":"${NullGuid}","ProcessId":12,"TimeoutInMs":null}`
      const [report] = yield* decodeCaptureBytes(frame(0x10100601, 3, withNull))
      expect((report as FrameReport).body).toEqual(JSON.parse(withNull))
    })
  )

  it.effect("a wire key named __proto__ is printed as data and pollutes nothing", () =>
    Effect.gen(function* () {
      const payload = `{"Result":0,"__proto__":{"polluted":true}}`
      const outcome = yield* invoke(["decode"], { stdin: [frame(CreateResponse, 1, payload)] })
      expect(outcome.stdout).toContain(`"body":${payload}`)
      expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
    })
  )
})

describe("decode: the terminal", () => {
  // C0 controls, ESC sequences, DEL, a C1 CSI (U+009B) and the line separators.
  const hostile = "x\u001b]0;owned\u0007\u001b[2K\u007f\u009b31m\u2028\u2029y"
  /** Whether text holds anything but printable characters and the line feed that ends each line. */
  const hasControl = (text: string): boolean =>
    [...text].some((c) => {
      const n = c.codePointAt(0)!
      return (n < 0x20 && n !== 0x0a) || (n >= 0x7f && n <= 0x9f) || n === 0x2028 || n === 0x2029
    })

  it.effect("guest strings reach stdout escaped, and stay exact for a JSON reader", () =>
    Effect.gen(function* () {
      const payload = JSON.stringify({ Result: 0, ErrorMessage: hostile })
      const outcome = yield* invoke(["decode"], { stdin: [frame(CreateResponse, 1, payload)] })
      expect(outcome.status).toBe(0)
      expect(hasControl(outcome.stdout)).toBe(false)
      expect((JSON.parse(outcome.stdout) as FrameReport).body).toMatchObject({ ErrorMessage: hostile })
    })
  )

  it.effect("damage lines and the summary carry no control characters either", () =>
    Effect.gen(function* () {
      // Not JSON, and no raw control byte: JSON.parse's own message quotes the payload.
      const notJson = frame(CreateResponse, 1, `{"\u009b2J\u2028": x}`)
      const outcome = yield* invoke(["decode"], { stdin: [Buffer.concat([notJson, good])] })
      expect(outcome.status).toBe(1)
      const [damage] = outcome.stdout.split("\n").map((l) => JSON.parse(l || "null") as DamageReport)
      expect(damage).toMatchObject({ offset: 0, error: "InvalidJson" })
      expect(damage!.message).toContain("\u009b2J\u2028")
      expect(hasControl(outcome.stdout)).toBe(false)
      expect(hasControl(outcome.stderr)).toBe(false)
      expect(outcome.stderr).toBe(
        "gcsctl decode: 1 damaged region(s), the first at offset 0; decoding resynchronised after each\n"
      )
    })
  )
})
