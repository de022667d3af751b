import { describe, expect, it } from "@effect/vitest"
import { Frame, FrameDecoder, MessageType } from "@gcs-bridge/protocol"
import { HybridAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Fiber, Stream } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { invoke } from "./harness.js"

/** A short-named temporary directory (Unix socket paths are short), removed when the scope closes. */
const scopedDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir().length <= 60 ? tmpdir() : "/tmp", "cap-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

interface Line {
  readonly from?: string
  readonly time?: number
  readonly type?: string
  readonly id?: number
  readonly body?: { readonly Result?: number }
}

const lines = (stdout: string): Array<Line> =>
  stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Line)

/** `gcsctl run --capture FILE -- echo hi` on the embedded guest. */
const captureEcho = (dir: string) =>
  Effect.gen(function* () {
    const path = join(dir, "echo.cap")
    const run = yield* invoke(["run", "--capture", path, "--", "echo", "hi"])
    expect(run).toMatchObject({ status: 0, stdout: "hi\n", stderr: "" })
    return path
  })

describe("gcsctl run --capture, decode FILE, replay", () => {
  it.live("decode FILE prints both directions of a captured run, each with from and time", () =>
    Effect.gen(function* () {
      const path = yield* captureEcho(yield* scopedDir)
      const decoded = yield* invoke(["decode", path])
      expect(decoded).toMatchObject({ status: 0, stderr: "" })
      const frames = lines(decoded.stdout)
      const summary = frames.map(({ from, type }) => `${from} ${type}`)
      expect(summary.slice(0, 2)).toEqual([
        "host Request(NegotiateProtocol)",
        "guest Response(NegotiateProtocol)"
      ])
      expect(summary).toContain("host Request(ExecuteProcess)")
      expect(summary).toContain("guest Response(ExecuteProcess)")
      expect(summary).toContain("guest Response(WaitForProcess)")
      for (const frame of frames) expect(typeof frame.time).toBe("number")
      const times = frames.map((f) => f.time!)
      // Within a direction, frames are in recording order, so times do not go back.
      for (const from of ["host", "guest"]) {
        const own = frames.filter((f) => f.from === from).map((f) => f.time!)
        expect([...own].sort((a, b) => a - b)).toEqual(own)
      }
      expect(Math.min(...times)).toBeGreaterThanOrEqual(0)
    })
  )

  it.live("decode FILE of a raw stream decodes it as stdin would, without from or time", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = yield* captureEcho(dir)
      // The host's bytes alone, as a raw stream: the first record's payload.
      const file = readFileSync(path)
      const raw = join(dir, "raw.bin")
      writeFileSync(raw, file.subarray(8 + 13, 8 + 13 + file.readUInt32LE(8 + 9)))
      const fromFile = yield* invoke(["decode", raw])
      const fromStdin = yield* invoke(["decode"], { stdin: [readFileSync(raw)] })
      expect(fromFile.status).toBe(0)
      expect(fromFile.stdout).toBe(fromStdin.stdout)
      expect(lines(fromFile.stdout)[0]).not.toHaveProperty("from")
    })
  )

  it.live("a capture cut inside a record: the frames before it, then one error line", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = yield* captureEcho(dir)
      const cut = join(dir, "cut.cap")
      const file = readFileSync(path)
      writeFileSync(cut, file.subarray(0, file.length - 3))
      const decoded = yield* invoke(["decode", cut])
      expect(decoded.status).toBe(1)
      expect(decoded.stderr).toMatch(/^gcsctl decode: the capture ends inside a record \(offset \d+\)\n$/)
      expect(lines(decoded.stdout)[0]!.type).toBe("Request(NegotiateProtocol)")
    })
  )

  it.live("replay answers a host with the recorded guest: caps prints what the live guest said", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = yield* captureEcho(dir)
      const live = yield* invoke(["caps"])
      expect(live.status).toBe(0)
      const [host, guest] = yield* Effect.all(
        [
          invoke(["caps", "--guest", `hybrid://${dir}/h.sock`, "--accept-timeout", "20s"]),
          invoke(["replay", path, "--connect", `unix://${dir}/h.sock`, "--timing"])
        ],
        { concurrency: 2 }
      )
      expect(host).toMatchObject({ status: 0, stdout: live.stdout, stderr: "" })
      expect(guest).toMatchObject({ status: 0, stdout: "", stderr: "" })
    })
  )

  it.live(
    "replay matches answers by message id, not position, and sends notifications after their response",
    () =>
      Effect.gen(function* () {
        const dir = yield* scopedDir
        const path = join(dir, "made.cap")
        const proc = MessageType.Proc.DumpStacks
        const frame = (type: number, id: number, body: object) =>
          Buffer.from(Frame.encodeFrame(type, id, new TextEncoder().encode(JSON.stringify(body))))
        const record = (direction: number, bytes: Buffer) => {
          const header = Buffer.alloc(13)
          header.writeUInt8(direction, 0)
          header.writeUInt32LE(bytes.length, 9)
          return Buffer.concat([header, bytes])
        }
        const answer = (id: number) =>
          frame(MessageType.responseType(proc), id, { Result: 0, GuestStacks: `s${id}` })
        const notification = frame(MessageType.NotifyContainer, 0, { ContainerId: "c", Type: "Exited" })
        // The guest answered id 1 first, then id 0 followed by a notification.
        writeFileSync(
          path,
          Buffer.concat([
            Buffer.from("GCSCAP01"),
            record(1, answer(1)),
            record(1, Buffer.concat([answer(0), notification]))
          ])
        )
        const address = new HybridAddress({ path: join(dir, "h.sock") })
        const transport = yield* Transport
        const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
        const replay = yield* Effect.forkChild(invoke(["replay", path, "--connect", `unix://${dir}/h.sock`]))
        const host = yield* listener.accept()
        const request = (id: number) =>
          Frame.encodeFrame(MessageType.requestType(proc), id, new TextEncoder().encode("{}"))
        yield* host.writeAll([request(0), request(1), request(7)])
        // EOF once all three are in: the replay then ends, having seen every request.
        yield* host.endWrite
        const reader = new FrameDecoder.FrameReader()
        const got = yield* host.stream.pipe(
          Stream.map((chunk) => reader.push(chunk)),
          Stream.flattenIterable,
          Stream.take(3),
          Stream.runCollect
        )
        expect(got.map(({ id, type }) => [MessageType.typeName(type), id])).toEqual([
          ["Response(DumpStacks)", 0],
          ["Notify(Container)", 0],
          ["Response(DumpStacks)", 1]
        ])
        const outcome = yield* Fiber.join(replay)
        expect(outcome.status).toBe(1)
        expect(outcome.stderr).toContain("1 request(s) had no recorded response (ids 7)")
      }).pipe(Effect.provide(Transport.layerNode))
  )

  it.live("replay of something that is not a capture is one error line", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = join(dir, "not.cap")
      writeFileSync(path, "hello")
      const outcome = yield* invoke(["replay", path, "--connect", `unix://${dir}/h.sock`])
      expect(outcome.status).toBe(1)
      expect(outcome.stderr).toContain("is not a capture file")
    })
  )

  it.effect("--help lists replay and run --capture", () =>
    Effect.gen(function* () {
      expect((yield* invoke(["--help"])).stdout).toMatch(/replay/)
      expect((yield* invoke(["run", "--help"])).stdout).toMatch(/--capture FILE/)
      expect((yield* invoke(["decode", "--help"])).stdout).toMatch(/file/i)
    })
  )
})
