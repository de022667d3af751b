import { describe, expect, it } from "@effect/vitest"
import { MessageType } from "@gcs-bridge/protocol"
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
  readonly port: number
  readonly bytes: string
}

/** A GCSCAP02 file's records: direction, time, length, port, bytes. */
const parse = (file: Buffer): Array<Record> => {
  expect(file.subarray(0, 8).toString()).toBe("GCSCAP02")
  const records: Array<Record> = []
  for (let i = 8; i < file.length;) {
    const length = file.readUInt32LE(i + 9)
    const bytes = file.subarray(i + 17, i + 17 + length).toString()
    records.push({
      direction: file[i]!,
      time: file.readBigUInt64LE(i + 1),
      port: file.readUInt32LE(i + 13),
      bytes
    })
    i += 17 + length
  }
  return records
}

const bridge = MessageType.LinuxGcsVsockPort

/**
 * A host listening through `Capture.transport` on the bridge port and on stdio port 5, and a guest dialling
 * both: the host's ends, the guest's ends.
 */
const bridgeAndStdio = (recorder: Capture.Recorder, stdio: boolean) =>
  Effect.gen(function* () {
    const plain = yield* Transport
    const recorded = Capture.transport(plain, recorder, { stdio })
    const address = new MemoryAddress({ name: `capture-${Math.random()}` })
    const listeners = [yield* recorded.listen(address, bridge), yield* recorded.listen(address, 5)]
    const guest = [yield* plain.connect(address, bridge), yield* plain.connect(address, 5)]
    const host = [yield* listeners[0]!.accept(), yield* listeners[1]!.accept()]
    return { host, guest }
  })

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
      expect(records.every((r) => r.port === bridge)).toBe(true)
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

  it.effect("Capture.transport with stdio records every accepted connection, each record with its port", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "stdio.cap")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { guest, host } = yield* bridgeAndStdio(yield* Capture.open(path), true)
          yield* host[0]!.write(text("request"))
          yield* Stream.runHead(guest[0]!.stream)
          yield* guest[1]!.write(text("out\n"))
          yield* Stream.runHead(host[1]!.stream)
        })
      )
      expect(parse(readFileSync(path)).map(({ bytes, direction, port }) => [direction, port, bytes])).toEqual(
        [
          [Capture.HostToGuest, bridge, "request"],
          [Capture.GuestToHost, 5, "out\n"]
        ]
      )
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("Capture.transport without stdio records the bridge only", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "bridge-only.cap")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { guest, host } = yield* bridgeAndStdio(yield* Capture.open(path), false)
          yield* host[0]!.write(text("request"))
          yield* Stream.runHead(guest[0]!.stream)
          yield* guest[1]!.write(text("out\n"))
          yield* Stream.runHead(host[1]!.stream)
        })
      )
      expect(parse(readFileSync(path)).map(({ bytes, port }) => [port, bytes])).toEqual([[bridge, "request"]])
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "the bridge and the stdio connections share one bound: past it, records are dropped and counted",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const path = join(dir, "shared.cap")
        const chunk = new Uint8Array(60).fill(0x41)
        const received = yield* Effect.scoped(
          Effect.gen(function* () {
            const recorder = yield* Capture.open(path, { maxPending: 100 })
            const { guest, host } = yield* bridgeAndStdio(recorder, true)
            // Synchronous writes: the file writer has no chance to catch up between them.
            yield* Effect.all([host[0]!.write(chunk), host[1]!.write(chunk)])
            yield* Effect.all([host[0]!.endWrite, host[1]!.endWrite])
            const count = (i: number) =>
              Stream.runFold(
                guest[i]!.stream,
                () => 0,
                (n, c) => n + c.length
              )
            const bytes = [yield* count(0), yield* count(1)]
            expect(recorder.dropped()).toBe(1)
            return bytes
          })
        )
        expect(received).toEqual([60, 60])
        expect(parse(readFileSync(path)).map((r) => r.port)).toEqual([bridge])
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
