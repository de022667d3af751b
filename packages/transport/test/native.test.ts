/**
 * The production layer (`Transport.layer`, the native engine): the same
 * conformance, hybrid, socket-file and slow-consumer checks as for Node's
 * `net` on AF_UNIX, the Unix peer-credential check, and vsock up to listen and
 * accept-timeout only — there is no vsock loopback here, and nothing in this
 * file ever connects an AF_VSOCK socket.
 */
import { describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, Scope, Stream } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { chmodSync, closeSync, openSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import * as native from "@gcs-bridge/native"
import { HvsockAddress, Transport, UnixAddress, VsockAddress, HybridAddress } from "../src/index.js"
import { MemoryNetwork } from "../src/internal/memory.js"
import { loadNative, makeService } from "../src/internal/service.js"
import {
  expire,
  nextTurn,
  conformance,
  hybridSuite,
  readAll,
  socketFileSuite,
  tempDir,
  transportFailure
} from "./helpers.js"
import { slowConsumer } from "./slowConsumer.js"

conformance(
  "Transport.layer unix://",
  Transport.layer,
  () => {
    const address = new UnixAddress({ path: join(tempDir(), "vm.sock") })
    return { listen: address, connect: address }
  },
  "unix"
)

conformance(
  "Transport.layer hybrid://",
  Transport.layer,
  () => {
    const path = join(tempDir(), "fc.sock")
    return { listen: new HybridAddress({ path }), connect: new UnixAddress({ path }) }
  },
  "unix"
)

hybridSuite("Transport.layer", Transport.layer)
socketFileSuite("Transport.layer", Transport.layer)
slowConsumer("Transport.layer unix", Transport.layer, () => new UnixAddress({ path: join(tempDir(), "s") }))

describe("Transport.layer reading", () => {
  it.effect("one pull takes every Buffer of the engine's read: all the kernel held, in order", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new UnixAddress({ path: join(tempDir(), "vm.sock") })
      const listener = yield* transport.listen(address, 1)
      const client = yield* transport.connect(address, 1)
      const server = yield* listener.accept()
      // Less than the kernel holds, more than two of the engine's Buffers.
      const sent = Buffer.from(Array.from({ length: 150_000 }, (_, i) => (i * 131) & 0xff))
      yield* client.write(sent)
      const pull = yield* Stream.toPull(server.stream)
      const chunks = yield* pull
      expect(chunks.map((chunk) => chunk.length)).toEqual([
        native.ReadSize,
        native.ReadSize,
        150_000 - 2 * native.ReadSize
      ])
      expect(Buffer.concat(chunks)).toEqual(sent)
    }).pipe(Effect.provide(Transport.layer))
  )
})

describe.runIf(process.platform === "linux")("Transport.layer pipeTo", () => {
  it.effect("pipes in the kernel: the input has no other reader afterwards, even after a stop", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const dir = tempDir()
      const address = new UnixAddress({ path: join(dir, "vm.sock") })
      const listener = yield* transport.listen(address, 1)
      const client = yield* transport.connect(address, 1)
      const server = yield* listener.accept()
      const fd = openSync(join(dir, "out"), "w")
      yield* Effect.addFinalizer(() => Effect.sync(() => closeSync(fd)))
      const stop = yield* Deferred.make<void>()
      const piping = yield* Effect.forkChild(server.pipeTo(fd, { stop: Deferred.await(stop) }))
      yield* client.write(Buffer.from("kernel"))
      while (readFileSync(join(dir, "out"), "utf8") !== "kernel") yield* nextTurn
      yield* Deferred.succeed(stop, undefined)
      expect(yield* Fiber.join(piping)).toBe(6)
      // The bytes went past JavaScript, so no stream could continue where the pipe left off.
      for (const late of [Stream.runDrain(server.stream), server.pipeTo(fd)]) {
        const refused = yield* transportFailure(late)
        expect(refused.reason).toBe("Read")
        expect(refused.message).toContain(`piped into descriptor ${fd}`)
      }
    }).pipe(Effect.scoped, Effect.provide(Transport.layer))
  )
})

describe.runIf(process.platform === "linux")("Transport.layer pipeTo / pipeFrom on a blocking socket", () => {
  // A child's stdio pipes are socketpairs whose child end stays blocking: splice would block its loop there, so
  // the engine refuses them and the connection copies through fs (its calls block a pool thread, not the loop).
  const child = `
import { Effect, Fiber, Stream } from "effect"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
const address = new UnixAddress({ path: process.argv[1] })
const program = Effect.gen(function* () {
  const transport = yield* Transport
  const listener = yield* transport.listen(address, 1)
  const client = yield* transport.connect(address, 1)
  const server = yield* listener.accept()
  yield* Effect.forkChild(Effect.andThen(client.write(new Uint8Array(3 << 20).fill(7)), client.endWrite))
  const into = yield* server.pipeTo(3)
  const counting = yield* Effect.forkChild(Stream.runFold(client.stream, () => 0, (n, chunk) => n + chunk.length))
  const from = yield* server.pipeFrom(0)
  yield* server.endWrite
  console.log(JSON.stringify({ into, from, received: yield* Fiber.join(counting) }))
}).pipe(Effect.scoped, Effect.provide(Transport.layer))
Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(String(e)); process.exit(1) })
`

  it("moves every byte into fd 3 and out of fd 0 of a child, both blocking sockets", () => {
    const input = Buffer.alloc(2 << 20, 5)
    const run = spawnSync(
      process.execPath,
      ["--input-type=module", "-e", child, join(tempDir(), "vm.sock")],
      {
        cwd: dirname(fileURLToPath(import.meta.url)),
        input,
        stdio: ["pipe", "pipe", "pipe", "pipe"],
        maxBuffer: 16 << 20,
        timeout: 60_000
      }
    )
    expect(run.stderr.toString()).toBe("")
    expect(JSON.parse(run.stdout.toString())).toEqual({ into: 3 << 20, from: 2 << 20, received: 2 << 20 })
    const written = run.output[3] as Buffer
    expect(written.length).toBe(3 << 20)
    expect(written.every((byte) => byte === 7)).toBe(true)
    expect(run.status).toBe(0)
  })
})

const uid = process.getuid?.() ?? 0

describe("Transport.layer Unix peer credentials", () => {
  it.effect("reports the peer's uid", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new UnixAddress({ path: join(tempDir(), "vm.sock") })
      const listener = yield* transport.listen(address, 1)
      yield* transport.connect(address, 1)
      const server = yield* listener.accept()
      expect(server.peer).toEqual({ family: "unix", port: 1, uid })
    }).pipe(Effect.provide(Transport.layer))
  )

  it.effect("refuses a peer of another uid (not root): logged, closed, never accepted", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const logger = Logger.layer([Logger.make(({ message }) => void logs.push(String(message)))])
      const path = join(tempDir(), "vm.sock")
      const file = `${path}_1`
      const stranger = 65534
      // As root, a real process of another uid dials (the test opens the 0700/0600
      // files for it). Otherwise our own connection is the stranger: the listener is
      // told to expect a uid that is not ours.
      const expectUid = uid === 0 ? 0 : uid + 1
      const layer = Layer.effect(
        Transport,
        Effect.map(loadNative(), (module) =>
          makeService(new MemoryNetwork(), "Transport.layer", module, { uid: expectUid })
        )
      )
      yield* Effect.gen(function* () {
        const transport = yield* Transport
        const listener = yield* transport.listen(new UnixAddress({ path }), 1)
        if (uid === 0) {
          chmodSync(dirname(file), 0o711)
          chmodSync(file, 0o666)
          const exitCode = yield* Effect.callback<number | null>((resume) => {
            const child = spawn(
              process.execPath,
              [
                "-e",
                `const s = require("net").createConnection(${JSON.stringify(file)});
                 s.on("error", () => process.exit(2)); s.on("close", () => process.exit(0)); s.resume()`
              ],
              { uid: stranger, gid: stranger, stdio: "ignore" }
            )
            child.on("exit", (code) => resume(Effect.succeed(code)))
          })
          // The stranger connected and was hung up on.
          expect(exitCode).toBe(0)
        } else {
          const client = yield* transport.connect(new UnixAddress({ path }), 1)
          expect((yield* readAll(client)).length).toBe(0)
        }
        const waiting = yield* Effect.forkChild(Effect.scoped(listener.accept({ timeout: "1 second" })))
        yield* expire(waiting, "1 second")
        expect((yield* transportFailure(Fiber.join(waiting))).reason).toBe("AcceptTimeout")
      }).pipe(Effect.provide(Layer.merge(layer, logger)))
      yield* Effect.yieldNow
      expect(
        logs.some((line) => line.includes(`Unix peer uid ${uid === 0 ? stranger : uid} is neither`))
      ).toBe(true)
    })
  )
})

describe("Transport.layer vsock and hvsock (listen side only)", () => {
  const vsock = native.supports("vsock")

  it.effect.skipIf(!vsock)("vsock: listens on CID any and honours the accept deadline", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const port = 0x7000_0000 + (process.pid % 0x1000)
      for (const address of [new VsockAddress({ cid: "any" }), new VsockAddress({ cid: 3 })]) {
        {
          const scope = yield* Scope.make()
          const listener = yield* transport.listen(address, port).pipe(Scope.provide(scope))
          expect(listener.description).toBe(`vsock://${address.cid} port ${port}`)
          const waiting = yield* Effect.forkChild(Effect.scoped(listener.accept({ timeout: "50 millis" })))
          yield* expire(waiting, "50 millis")
          expect((yield* transportFailure(Fiber.join(waiting))).reason).toBe("AcceptTimeout")
          // Closing mid-accept fails the accept.
          const pending = yield* Effect.forkChild(Effect.scoped(listener.accept()))
          yield* Effect.yieldNow
          yield* Scope.close(scope, Exit.void)
          expect((yield* transportFailure(Fiber.join(pending))).reason).toBe("Closed")
        }
      }
    }).pipe(Effect.provide(Transport.layer))
  )

  it.effect.skipIf(vsock)("vsock: a kernel without a vsock transport is reported as a missing family", () =>
    Effect.gen(function* () {
      const error = yield* transportFailure(
        Effect.flatMap(Transport, (transport) => transport.listen(new VsockAddress({ cid: "any" }), 1))
      )
      expect(error.reason).toBe("Listen")
      expect(error.code).toBe("EAFNOSUPPORT")
    }).pipe(Effect.provide(Transport.layer))
  )

  it.effect("vsock://any cannot be dialled (refused before any socket is made)", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const error = yield* transportFailure(transport.connect(new VsockAddress({ cid: "any" }), 1))
      expect(error.reason).toBe("Connect")
      expect(error.code).toBe("EINVAL")
    }).pipe(Effect.provide(Transport.layer))
  )

  it.effect("hvsock is refused with EAFNOSUPPORT where the platform has no AF_HYPERV", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new HvsockAddress({ vmId: "6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1" })
      expect(native.supports("hyperv")).toBe(process.platform === "win32")
      if (process.platform !== "win32") {
        expect((yield* transportFailure(transport.listen(address, 1))).code).toBe("EAFNOSUPPORT")
        expect((yield* transportFailure(transport.connect(address, 1))).code).toBe("EAFNOSUPPORT")
      }
    }).pipe(Effect.provide(Transport.layer))
  )
})

describe("Transport.layer without @gcs-bridge/native (an optional dependency)", () => {
  const missing = Layer.effect(
    Transport,
    Effect.map(
      loadNative(() => Promise.reject(new Error("Cannot find package '@gcs-bridge/native'"))),
      (native) => makeService(new MemoryNetwork(), "Transport.layer", native)
    )
  )

  it.effect("vsock and hvsock fail with a typed error that names the package and why it is needed", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      for (const address of [
        new VsockAddress({ cid: 3 }),
        new VsockAddress({ cid: "any" }),
        new HvsockAddress({ vmId: "6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1" })
      ]) {
        for (const [phase, attempt] of [
          ["Listen", Effect.asVoid(transport.listen(address, 1))],
          ["Connect", Effect.asVoid(transport.connect(address, 1))]
        ] as const) {
          const error = yield* transportFailure(attempt)
          expect(error.reason).toBe(phase)
          expect(error.code).toBe("EAFNOSUPPORT")
          expect(error.message).toContain("needs the optional package @gcs-bridge/native")
          expect(error.message).toContain("AF_VSOCK / AF_HYPERV")
          expect(error.message).toContain("Cannot find package '@gcs-bridge/native'")
          expect(error.message).toContain("unix:// and hybrid:// work without it")
        }
      }
    }).pipe(Effect.provide(missing))
  )

  it.effect("unix and hybrid still work, through Node's net", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const path = join(tempDir(), "fc.sock")
      const listener = yield* transport.listen(new HybridAddress({ path }), 5)
      const guest = yield* transport.connect(new UnixAddress({ path }), 5)
      const host = yield* listener.accept()
      // Node's net cannot tell the peer's uid; the native engine can.
      expect(host.peer).toEqual({ family: "unix", port: 5 })
      yield* guest.write(Buffer.from("no addon"))
      yield* guest.endWrite
      expect((yield* readAll(host)).toString()).toBe("no addon")
    }).pipe(Effect.provide(missing))
  )
})

describe("Transport.layer releases what it opened", () => {
  it.effect("no engine handle outlives the scopes of a listener, an accepted and a dialled connection", () =>
    Effect.gen(function* () {
      // A closed handle leaves the count in the loop's close phase, which follows the
      // check phase of setImmediate: two turns of the loop are enough.
      const settle = Effect.andThen(nextTurn, nextTurn)
      yield* settle
      const before = native.openHandles()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const transport = yield* Transport
          const address = new UnixAddress({ path: join(tempDir(), "vm.sock") })
          const listener = yield* transport.listen(address, 1)
          const client = yield* transport.connect(address, 1)
          const server = yield* listener.accept()
          yield* client.write(Buffer.from("x"))
          yield* client.endWrite
          expect((yield* readAll(server)).toString()).toBe("x")
          expect(native.openHandles()).toBeGreaterThanOrEqual(before + 3)
        })
      ).pipe(Effect.provide(Transport.layer))
      yield* settle
      expect(native.openHandles()).toBe(before)
    })
  )
})
