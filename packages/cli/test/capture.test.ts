import { describe, expect, it } from "@effect/vitest"
import { Frame, FrameDecoder, MessageType } from "@gcs-bridge/protocol"
import { HybridAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Fiber, Stream } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decodeCapture, StdioLineLimit } from "../src/CaptureDecoder.js"
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
  readonly port?: number
  readonly bytes?: number
  readonly text?: string
  readonly base64?: string
}

const bridgePort = MessageType.LinuxGcsVsockPort

/** A capture record: version 1 (no port) when `port` is undefined, else version 2. */
const record = (direction: number, bytes: Buffer, port?: number) => {
  const header = Buffer.alloc(port === undefined ? 13 : 17)
  header.writeUInt8(direction, 0)
  header.writeUInt32LE(bytes.length, 9)
  if (port !== undefined) header.writeUInt32LE(port, 13)
  return Buffer.concat([header, bytes])
}

const shExit3 = ["sh", "-c", "echo out; echo err >&2; exit 3"]

/** `gcsctl run --capture FILE [--capture-stdio] -- sh -c 'echo out; echo err >&2; exit 3'` on the embedded guest. */
const captureSh = (dir: string, stdio: boolean) =>
  Effect.gen(function* () {
    const path = join(dir, stdio ? "sh-stdio.cap" : "sh.cap")
    const run = yield* invoke([
      "run",
      "--capture",
      path,
      ...(stdio ? ["--capture-stdio"] : []),
      "--",
      ...shExit3
    ])
    expect(run).toMatchObject({ status: 3, stdout: "out\n", stderr: "err\n" })
    return path
  })

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
      writeFileSync(raw, file.subarray(8 + 17, 8 + 17 + file.readUInt32LE(8 + 9)))
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

  it.live(
    "run --capture-stdio: decode shows each stdio record as a line with from, time, port, bytes, text",
    () =>
      Effect.gen(function* () {
        const path = yield* captureSh(yield* scopedDir, true)
        const decoded = yield* invoke(["decode", path])
        expect(decoded).toMatchObject({ status: 0, stderr: "" })
        const all = lines(decoded.stdout)
        const stdio = all.filter((l) => l.port !== undefined)
        expect(stdio.map(({ bytes, from, text }) => ({ from, bytes, text }))).toEqual(
          expect.arrayContaining([
            { from: "guest", bytes: 4, text: "out\n" },
            { from: "guest", bytes: 4, text: "err\n" }
          ])
        )
        for (const line of stdio) expect(typeof line.time).toBe("number")
        // The ports are those of the ExecuteProcess request: stdout's for out, stderr's for err.
        const exec = all.find((l) => l.type === "Request(ExecuteProcess)") as unknown as {
          body: { Settings: { VsockStdioRelaySettings: { StdOut: number; StdErr: number } } }
        }
        const ports = exec.body.Settings.VsockStdioRelaySettings
        expect(stdio.find((l) => l.text === "out\n")!.port).toBe(ports.StdOut)
        expect(stdio.find((l) => l.text === "err\n")!.port).toBe(ports.StdErr)
        expect(all.filter((l) => l.port === undefined).map((l) => l.type)).toContain(
          "Response(WaitForProcess)"
        )
      })
  )

  it.live("replay maps recorded stdio ports to the live request's by position", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = join(dir, "ports.cap")
      const proc = MessageType.Proc.ExecuteProcess
      const frame = (type: number, id: number, body: object) =>
        Buffer.from(Frame.encodeFrame(type, id, new TextEncoder().encode(JSON.stringify(body))))
      const exec = (ports: object) =>
        frame(MessageType.requestType(proc), 1, {
          ContainerId: "00000000-0000-0000-0000-000000000000",
          ActivityId: "00000000-0000-0000-0000-000000000000",
          Settings: { ProcessParameters: '{"CommandArgs":["x"]}', VsockStdioRelaySettings: ports }
        })
      // Recorded: stdout on port 5, stderr on port 6.
      writeFileSync(
        path,
        Buffer.concat([
          Buffer.from("GCSCAP02"),
          record(0, exec({ StdOut: 5, StdErr: 6 }), bridgePort),
          record(1, frame(MessageType.responseType(proc), 1, { Result: 0, ProcessId: 9 }), bridgePort),
          record(1, Buffer.from("to stdout"), 5),
          record(1, Buffer.from("to stderr"), 6)
        ])
      )
      const address = new HybridAddress({ path: join(dir, "h.sock") })
      const transport = yield* Transport
      const listener = yield* transport.listen(address, bridgePort)
      // Live: stdout on port 81, stderr on port 80.
      const stdout = yield* transport.listen(address, 81)
      const stderr = yield* transport.listen(address, 80)
      const replay = yield* Effect.forkChild(invoke(["replay", path, "--connect", `unix://${dir}/h.sock`]))
      const host = yield* listener.accept()
      yield* host.write(exec({ StdOut: 81, StdErr: 80 }))
      const all = (c: { readonly stream: Stream.Stream<Uint8Array, unknown> }) =>
        c.stream.pipe(Stream.decodeText(), Stream.mkString)
      expect(yield* all(yield* stdout.accept())).toBe("to stdout")
      expect(yield* all(yield* stderr.accept())).toBe("to stderr")
      const reader = new FrameDecoder.FrameReader()
      const response = yield* host.stream.pipe(
        Stream.map((chunk) => reader.push(chunk)),
        Stream.flattenIterable,
        Stream.runHead
      )
      expect(
        response._tag === "Some" && [MessageType.typeName(response.value.type), response.value.id]
      ).toEqual(["Response(ExecuteProcess)", 1])
      yield* host.endWrite
      expect((yield* Fiber.join(replay)).status).toBe(0)
    }).pipe(Effect.provide(Transport.layerNode))
  )

  it.live("run --capture without --capture-stdio records no stdio", () =>
    Effect.gen(function* () {
      const path = yield* captureSh(yield* scopedDir, false)
      const decoded = lines((yield* invoke(["decode", path])).stdout)
      expect(decoded.map((l) => l.type)).toContain("Response(WaitForProcess)")
      expect(decoded.filter((l) => l.port !== undefined)).toEqual([])
      const file = readFileSync(path)
      for (let i = 8; i < file.length; i += 17 + file.readUInt32LE(i + 9)) {
        expect(file.readUInt32LE(i + 13)).toBe(bridgePort)
      }
    })
  )

  it.effect("--capture-stdio without --capture is a usage error", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--capture-stdio", "--", "true"])
      expect(outcome.status).toBe(2)
      expect(outcome.stderr).toContain("--capture-stdio records into the --capture FILE")
    })
  )

  it.live("replay of a --capture-stdio capture: run --guest prints the recorded output and exits 3", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = yield* captureSh(dir, true)
      const [host, guest] = yield* Effect.all(
        [
          invoke(["run", "--guest", `hybrid://${dir}/h.sock`, "--accept-timeout", "20s", "--", ...shExit3]),
          invoke(["replay", path, "--connect", `unix://${dir}/h.sock`])
        ],
        { concurrency: 2 }
      )
      expect(host).toMatchObject({ status: 3, stdout: "out\n", stderr: "err\n" })
      expect(guest).toMatchObject({ status: 0, stdout: "", stderr: "" })
    })
  )

  it.live("a GCSCAP01 file decodes as the GCSCAP02 file of the same bridge records does", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const proc = MessageType.Proc.DumpStacks
      const frame = (type: number, id: number, body: object) =>
        Buffer.from(Frame.encodeFrame(type, id, new TextEncoder().encode(JSON.stringify(body))))
      const request = frame(MessageType.requestType(proc), 4, {})
      const response = frame(MessageType.responseType(proc), 4, { Result: 0, GuestStacks: "s" })
      const write = (name: string, magic: string, port?: number) => {
        const path = join(dir, name)
        writeFileSync(
          path,
          Buffer.concat([Buffer.from(magic), record(0, request, port), record(1, response, port)])
        )
        return path
      }
      const v1 = yield* invoke(["decode", write("v1.cap", "GCSCAP01")])
      const v2 = yield* invoke(["decode", write("v2.cap", "GCSCAP02", bridgePort)])
      expect(v1).toMatchObject({ status: 0, stderr: "" })
      expect(lines(v1.stdout).map(({ from, id, type }) => [from, type, id])).toEqual([
        ["host", "Request(DumpStacks)", 4],
        ["guest", "Response(DumpStacks)", 4]
      ])
      expect(v2.stdout).toBe(v1.stdout)
    })
  )

  it.live("decode: stdio bytes that are not UTF-8 are base64; controls in text are escaped", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const path = join(dir, "bytes.cap")
      writeFileSync(
        path,
        Buffer.concat([
          Buffer.from("GCSCAP02"),
          record(1, Buffer.from([0xff, 0x00, 0x41]), 7),
          record(0, Buffer.from("\u001b[2J\u009b"), 5)
        ])
      )
      const decoded = yield* invoke(["decode", path])
      expect(decoded.status).toBe(0)
      expect(decoded.stdout).toBe(
        '{"from":"guest","time":0,"port":7,"bytes":3,"base64":"/wBB"}\n' +
          '{"from":"host","time":0,"port":5,"bytes":6,"text":"\\u001b[2J\\u009b"}\n'
      )
    })
  )

  it.effect(
    "decode: a stdio record longer than StdioLineLimit is cut into lines of that size, however it is read",
    () =>
      Effect.gen(function* () {
        const data = Buffer.alloc(StdioLineLimit + 10, 0x61)
        const file = Buffer.concat([Buffer.from("GCSCAP02"), record(1, data, 9)])
        // Read in odd-sized chunks: the cut does not depend on them.
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < file.length; i += 65_537) chunks.push(file.subarray(i, i + 65_537))
        const reports = yield* Stream.runCollect(decodeCapture(Stream.fromIterable(chunks)))
        expect(reports.map((r) => ("bytes" in r ? r.bytes : undefined))).toEqual([StdioLineLimit, 10])
      })
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
      expect((yield* invoke(["run", "--help"])).stdout).toMatch(/--capture-stdio/)
      expect((yield* invoke(["decode", "--help"])).stdout).toMatch(/file/i)
    })
  )
})
