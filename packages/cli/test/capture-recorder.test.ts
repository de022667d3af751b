import { describe, expect, it } from "@effect/vitest"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Stream } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Capture from "../src/Capture.js"

/** A temporary directory removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "capture-test-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Host and guest ends of one memory connection; the host's is recorded by `recorder`. */
const pair = (recorder: Capture.Recorder) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const address = new MemoryAddress({ name: `capture-${Math.random()}` })
    const listener = yield* transport.listen(address, 7)
    const guest = yield* transport.connect(address, 7)
    const host = recorder.wrap(yield* listener.accept())
    return { host, guest }
  })

interface Record {
  readonly direction: number
  readonly time: bigint
  readonly bytes: string
}

const parse = (file: Buffer): Array<Record> => {
  expect(file.subarray(0, 8).toString()).toBe("GCSCAP01")
  const records: Array<Record> = []
  for (let i = 8; i < file.length;) {
    const length = file.readUInt32LE(i + 9)
    const bytes = file.subarray(i + 13, i + 13 + length).toString()
    records.push({ direction: file[i]!, time: file.readBigUInt64LE(i + 1), bytes })
    i += 13 + length
  }
  return records
}

const text = (s: string) => new TextEncoder().encode(s)

describe("Capture", () => {
  it.effect("records both directions in order, with direction and rising times, and closes the file", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "bridge.cap")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { guest, host } = yield* pair(yield* Capture.open(path))
          yield* host.write(text("request"))
          const got = yield* Stream.runHead(guest.stream)
          expect(got._tag === "Some" && new TextDecoder().decode(got.value)).toBe("request")
          yield* guest.write(text("response"))
          yield* Stream.runHead(host.stream)
          yield* host.writeAll([text("a"), text("b")])
        })
      )
      const records = parse(readFileSync(path))
      expect(records.map(({ bytes, direction }) => [direction, bytes])).toEqual([
        [Capture.HostToGuest, "request"],
        [Capture.GuestToHost, "response"],
        [Capture.HostToGuest, "a"],
        [Capture.HostToGuest, "b"]
      ])
      const times = records.map((r) => r.time)
      expect([...times].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(times)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("drops and counts records past its bound, and the bridge still carries every byte", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "bounded.cap")
      const received = yield* Effect.scoped(
        Effect.gen(function* () {
          const recorder = yield* Capture.open(path, { maxPending: 100 })
          const { guest, host } = yield* pair(recorder)
          const chunk = new Uint8Array(60).fill(0x41)
          // Synchronous writes: the file writer has no chance to catch up between them.
          yield* host.writeAll([chunk, chunk, chunk, chunk])
          yield* host.endWrite
          const bytes = yield* Stream.runFold(
            guest.stream,
            () => 0,
            (n, c) => n + c.length
          )
          expect(recorder.dropped()).toBe(3)
          return bytes
        })
      )
      expect(received).toBe(240)
      expect(parse(readFileSync(path))).toHaveLength(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a file that cannot be created is a CaptureError", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const error = yield* Effect.flip(Effect.scoped(Capture.open(join(dir, "missing", "x.cap"))))
      expect(error._tag).toBe("CaptureError")
      expect(error.message).toContain("ENOENT")
    })
  )
})
