/**
 * Shared checks: every engine must pass the same Connection / Listener
 * conformance suite, so the runtime and the guest can swap layers freely.
 */
import { afterAll, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Scope, Stream } from "effect"
import type { Duration, Layer } from "effect"
import { TestClock } from "effect/testing"
import { setImmediate } from "node:timers"
import { createHash } from "node:crypto"
import { spawn, spawnSync } from "node:child_process"
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  existsSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect } from "vitest"
import type { Address, Connection } from "../src/index.js"
import { HybridAddress, Transport, TransportError, UnixAddress } from "../src/index.js"

const directories: Array<string> = []
// Every directory a test file made goes when the file is done.
afterAll(() => {
  for (const dir of directories.splice(0)) {
    chmodSync(dir, 0o700)
    rmSync(dir, { recursive: true, force: true })
  }
})

/** A fresh 0700 directory for socket files, removed after the test file. */
export const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "gcs-transport-"))
  directories.push(dir)
  return dir
}

/** Everything `stream` yields, concatenated. */
export const readAll = (connection: Connection): Effect.Effect<Buffer, TransportError> =>
  Effect.map(Stream.runCollect(connection.stream), (chunks) => Buffer.concat(chunks))

/** Everything `forEach` hands over, concatenated. */
export const readEach = (connection: Connection): Effect.Effect<Buffer, TransportError> =>
  Effect.suspend(() => {
    const chunks: Array<Uint8Array> = []
    return Effect.map(
      connection.forEach((chunk) => chunks.push(chunk)),
      () => Buffer.concat(chunks)
    )
  })

/** What `forEach` with a consumer that throws on its first chunk ends with: the throw, as a defect. */
const defectOfThrowingConsumer = (connection: Connection) => {
  const boom = new Error("consumer bug")
  return Effect.map(
    Effect.exit(
      connection.forEach(() => {
        throw boom
      })
    ),
    (exit) => ({ boom, defect: Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined })
  )
}

const descriptors = new Set<number>()
afterAll(() => descriptors.forEach((fd) => closeSync(fd)))

/** A descriptor of `path` opened with `flags`, closed after the test file. */
const openDescriptor = (path: string, flags: string | number) =>
  Effect.sync(() => {
    const fd = openSync(path, flags)
    descriptors.add(fd)
    return fd
  })

/** The reason `operation`, still waiting when `connection` closes, fails with. */
const failureOnClose = (connection: Connection, operation: Effect.Effect<unknown, TransportError>) =>
  Effect.gen(function* () {
    const waiting = yield* Effect.forkChild(operation)
    yield* nextTurn
    yield* connection.close
    return (yield* transportFailure(Fiber.join(waiting))).reason
  })

/** What a descriptor of this process refers to. */
const descriptorPath = (fd: number) => `/proc/self/fd/${fd}`

/** The error of a failing effect, asserted to be a TransportError. */
export const transportFailure = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<TransportError, never, R> =>
  Effect.matchEffect(effect, {
    onFailure: (error) =>
      error instanceof TransportError
        ? Effect.succeed(error)
        : Effect.die(new Error(`expected a TransportError, got ${String(error)}`)),
    onSuccess: () => Effect.die(new Error("expected a failure, got a success"))
  })

/** One macrotask: lets I/O callbacks and timers of the real event loop run. */
export const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Moves the test clock by `duration` until `fiber` is done: a deadline the
 * fiber starts expires deterministically, however late it starts to sleep.
 */
export const expire = <A, E>(fiber: Fiber.Fiber<A, E>, duration: Duration.Input): Effect.Effect<void> =>
  Effect.gen(function* () {
    while (fiber.pollUnsafe() === undefined) {
      yield* nextTurn
      yield* TestClock.adjust(duration)
    }
  })

/** Deterministic pseudo-random bytes (content checks need more than zeros). */
export const pattern = (size: number, seed: number): Buffer => {
  const out = Buffer.alloc(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** Writes `data` in chunks of `chunkSize` through `write`, then half-closes. */
export const sendAll = (connection: Connection, data: Uint8Array, chunkSize = 65536) =>
  Effect.gen(function* () {
    for (let offset = 0; offset < data.length; offset += chunkSize) {
      yield* connection.write(data.subarray(offset, Math.min(offset + chunkSize, data.length)))
    }
    yield* connection.endWrite
  })

/**
 * The conformance suite: `address()` makes a fresh address per test for a
 * listener and a connector that reach each other (they differ for hybrid:
 * hybrid listens where a unix connector dials).
 */
export const conformance = (
  name: string,
  layer: Layer.Layer<Transport>,
  addresses: () => { readonly listen: Address; readonly connect: Address },
  expectedFamily: "unix" | "memory"
) =>
  describe(`${name} conformance`, () => {
    const port = 0x40000001
    // A fresh listener, a client connected to it, and the server side it accepted.
    const connectedPair = Effect.gen(function* () {
      const transport = yield* Transport
      const { listen, connect } = addresses()
      const listener = yield* transport.listen(listen, port)
      const client = yield* transport.connect(connect, port)
      const server = yield* listener.accept()
      return { client, server }
    })

    it.effect("connects, carries bytes both ways, and reports the peer", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const { listen, connect } = addresses()
        const listener = yield* transport.listen(listen, port)
        expect(listener.port).toBe(port)
        expect(listener.description).toContain(`port ${port}`)
        const client = yield* transport.connect(connect, port)
        const server = yield* listener.accept({ timeout: "5 seconds" })
        expect(server.peer.family).toBe(expectedFamily)
        expect(server.peer.port).toBe(port)
        expect(client.description).toContain(String(port))
        yield* client.write(Buffer.from("ping"))
        yield* client.endWrite
        expect((yield* readAll(server)).toString()).toBe("ping")
        yield* server.writeAll([Buffer.from("po"), new Uint8Array(0), Buffer.from("ng")])
        yield* server.endWrite
        expect((yield* readAll(client)).toString()).toBe("pong")
      }).pipe(Effect.provide(layer))
    )

    it.effect("hands a fresh connection's socket over for spawn (none in memory), none once used", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        const fresh = client.handoff?.()
        if (expectedFamily === "memory") expect(fresh).toBeUndefined()
        else expect(typeof fresh === "number" ? fresh >= 0 : fresh?.destroyed === false).toBe(true)
        yield* client.write(Buffer.from("x"))
        expect(client.handoff?.()).toBeUndefined()
        yield* client.endWrite
        yield* readAll(server)
        expect(server.handoff?.()).toBeUndefined()
      }).pipe(Effect.provide(layer))
    )

    it.effect("carries 8 MiB each way at once without loss or reordering", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        const up = pattern(8 << 20, 1)
        const down = pattern(8 << 20, 2)
        const [, , atServer, atClient] = yield* Effect.all(
          [sendAll(client, up, 50_000), sendAll(server, down, 70_000), readAll(server), readAll(client)],
          { concurrency: "unbounded" }
        )
        expect(sha(atServer)).toBe(sha(up))
        expect(sha(atClient)).toBe(sha(down))
      }).pipe(Effect.provide(layer))
    )

    it.effect("a writeAll of 8 MiB in 128 chunks arrives whole, a write made meanwhile after it", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        const data = pattern(8 << 20, 3)
        const chunks = Array.from({ length: 128 }, (_, i) => data.subarray(i << 16, (i + 1) << 16))
        const marker = Buffer.from("after")
        // The reader starts later: the big write is still waiting for room when the small one is made.
        const big = yield* Effect.forkChild(client.writeAll(chunks))
        yield* nextTurn
        const small = yield* Effect.forkChild(client.write(marker))
        const received = yield* Effect.forkChild(readAll(server))
        yield* Fiber.join(big)
        yield* Fiber.join(small)
        yield* client.endWrite
        const bytes = yield* Fiber.join(received)
        expect(bytes.length).toBe(data.length + marker.length)
        expect(sha(bytes)).toBe(sha(Buffer.concat([data, marker])))
      }).pipe(Effect.provide(layer))
    )

    it.effect("half-close: the peer reads EOF and can still answer", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        // Idempotent: concurrent and later callers all see the one half-close.
        yield* Effect.all([client.endWrite, client.endWrite], { concurrency: 2 })
        yield* client.endWrite
        expect((yield* readAll(server)).length).toBe(0)
        yield* server.write(Buffer.from("still here"))
        yield* server.close
        expect((yield* readAll(client)).toString()).toBe("still here")
        const afterEnd = yield* transportFailure(client.write(Buffer.from("x")))
        expect(afterEnd.reason).toBe("Write")
        expect(afterEnd.code).toBe("EPIPE")
      }).pipe(Effect.provide(layer))
    )

    it.effect("closing the connection's scope ends the peer's stream and fails a pending read", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const { listen, connect } = addresses()
        const listener = yield* transport.listen(listen, port)
        const scope = yield* Scope.make()
        const client = yield* transport.connect(connect, port).pipe(Scope.provide(scope))
        const server = yield* listener.accept()
        const started = yield* Deferred.make<void>()
        const reader = yield* Effect.forkChild(
          Stream.runDrain(
            Stream.concat(Stream.fromEffect(Deferred.succeed(started, undefined)), client.stream)
          )
        )
        yield* Deferred.await(started)
        yield* Scope.close(scope, Exit.void)
        const error = yield* transportFailure(Fiber.join(reader))
        expect(error.reason).toBe("Closed")
        expect((yield* readAll(server)).length).toBe(0)
        expect((yield* transportFailure(client.write(Buffer.from("x")))).reason).toBe("Closed")
        yield* client.close // idempotent
      }).pipe(Effect.provide(layer))
    )

    it.effect("closing the listener's scope fails a pending accept and frees the address", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const { listen, connect } = addresses()
        const scope = yield* Scope.make()
        const listener = yield* transport.listen(listen, port).pipe(Scope.provide(scope))
        const accepting = yield* Effect.forkChild(Effect.scoped(listener.accept()))
        yield* Effect.yieldNow
        yield* Scope.close(scope, Exit.void)
        expect((yield* transportFailure(Fiber.join(accepting))).reason).toBe("Closed")
        // Also an accept asked for only after the close.
        expect((yield* transportFailure(Effect.scoped(listener.accept()))).reason).toBe("Closed")
        expect((yield* transportFailure(transport.connect(connect, port))).reason).toBe("Connect")
        // The address is free again.
        const again = yield* transport.listen(listen, port)
        const client = yield* transport.connect(connect, port)
        const server = yield* again.accept({ timeout: "5 seconds" })
        yield* client.write(Buffer.from("ok"))
        yield* client.endWrite
        expect((yield* readAll(server)).toString()).toBe("ok")
      }).pipe(Effect.provide(layer))
    )

    it.effect("accept honours its deadline and an interrupted accept loses no connection", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const { listen, connect } = addresses()
        const listener = yield* transport.listen(listen, port)
        // The test clock makes the deadline deterministic: it expires when the clock is moved past it.
        const waiting = yield* Effect.forkChild(Effect.scoped(listener.accept({ timeout: "30 millis" })))
        yield* expire(waiting, "30 millis")
        const timedOut = yield* transportFailure(Fiber.join(waiting))
        expect(timedOut.reason).toBe("AcceptTimeout")
        expect(timedOut.port).toBe(port)
        const client = yield* transport.connect(connect, port)
        const server = yield* listener.accept({ timeout: "5 seconds" })
        yield* client.write(Buffer.from("after timeout"))
        yield* client.endWrite
        expect((yield* readAll(server)).toString()).toBe("after timeout")
      }).pipe(Effect.provide(layer))
    )

    it.effect("refuses a second listener on the same port and a connect to nobody", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const { listen, connect } = addresses()
        yield* transport.listen(listen, port)
        const twice = yield* transportFailure(transport.listen(listen, port))
        expect(twice.reason).toBe("Listen")
        expect(twice.code).toBe("EADDRINUSE")
        const nobody = yield* transportFailure(transport.connect(connect, port + 1))
        expect(nobody.reason).toBe("Connect")
        expect(["ECONNREFUSED", "ENOENT"]).toContain(nobody.code)
        const badPort = yield* transportFailure(transport.listen(listen, -1))
        expect(badPort.code).toBe("EINVAL")
      }).pipe(Effect.provide(layer))
    )

    it.effect("a stream has one consumer at a time; a later consumer continues", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        yield* client.write(Buffer.from("abc"))
        const first = yield* Stream.runHead(server.stream)
        expect(first._tag).toBe("Some")
        const holding = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const fiber = yield* Effect.forkChild(
          Stream.runDrain(
            Stream.mapEffect(server.stream, () =>
              Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release))
            )
          )
        )
        yield* client.write(Buffer.from("d"))
        yield* Deferred.await(holding)
        const second = yield* transportFailure(Stream.runDrain(server.stream))
        expect(second.reason).toBe("Read")
        yield* Fiber.interrupt(fiber)
        yield* client.write(Buffer.from("e"))
        yield* client.endWrite
        expect((yield* readAll(server)).toString()).toBe("e")
      }).pipe(Effect.provide(layer))
    )

    it.effect("forEach hands over 8 MiB in order, as they are read, and completes at the peer's EOF", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        const up = pattern(8 << 20, 3)
        const [, atServer] = yield* Effect.all([sendAll(client, up, 50_000), readEach(server)], {
          concurrency: "unbounded"
        })
        expect(sha(atServer)).toBe(sha(up))
      }).pipe(Effect.provide(layer))
    )

    it.effect(
      "forEach shares the stream's one-consumer claim; bytes that come while nobody reads wait for the next",
      () =>
        Effect.gen(function* () {
          const { client, server } = yield* connectedPair
          const seen: Array<string> = []
          const arrived = yield* Deferred.make<void>()
          const each = yield* Effect.forkChild(
            server.forEach((chunk) => {
              seen.push(Buffer.from(chunk).toString())
              Deferred.doneUnsafe(arrived, Exit.void)
            })
          )
          yield* client.write(Buffer.from("one"))
          yield* Deferred.await(arrived)
          expect((yield* transportFailure(Stream.runDrain(server.stream))).reason).toBe("Read")
          expect((yield* transportFailure(server.forEach(() => {}))).reason).toBe("Read")
          yield* Fiber.interrupt(each)
          // With nobody reading, these wait in the connection until the next consumer.
          yield* client.write(Buffer.from("two"))
          yield* client.endWrite
          expect((yield* readEach(server)).toString()).toBe("two")
          expect(seen.join("")).toBe("one")
        }).pipe(Effect.provide(layer))
    )

    it.effect(
      "forEach fails with Closed when its connection closes, and dies of a consumer that throws",
      () =>
        Effect.gen(function* () {
          const { server } = yield* connectedPair
          const reading = yield* Effect.forkChild(server.forEach(() => {}))
          yield* Effect.yieldNow
          yield* server.close
          expect((yield* transportFailure(Fiber.join(reading))).reason).toBe("Closed")
          expect((yield* transportFailure(server.forEach(() => {}))).reason).toBe("Closed")
          const other = yield* connectedPair
          yield* other.server.write(Buffer.from("y"))
          const { boom, defect } = yield* defectOfThrowingConsumer(other.client)
          expect(defect).toBe(boom)
        }).pipe(Effect.provide(layer))
    )

    it.effect(
      "pipeTo writes 8 MiB into a file in order, gives the count, and leaves the descriptor open",
      () =>
        Effect.gen(function* () {
          const { client, server } = yield* connectedPair
          const path = join(tempDir(), "out")
          const fd = yield* openDescriptor(path, "w")
          const up = pattern(8 << 20, 5)
          const progress: Array<number> = []
          const piping = server.pipeTo(fd, { onProgress: (moved) => progress.push(moved) })
          const [, moved] = yield* Effect.all([sendAll(client, up, 50_000), piping], {
            concurrency: "unbounded"
          })
          expect(moved).toBe(up.length)
          // The running count, heard on the way: growing, never past the end (in the kernel, about once per MiB).
          expect(progress.length).toBeGreaterThanOrEqual(4)
          expect(progress).toEqual([...progress].sort((a, b) => a - b))
          expect(progress.at(-1)!).toBeLessThanOrEqual(up.length)
          writeFileSync(fd, "|after")
          expect(sha(readFileSync(path))).toBe(sha(Buffer.concat([up, Buffer.from("|after")])))
        }).pipe(Effect.provide(layer))
    )

    it.effect(
      "pipeTo keeps pace with a slow reader of a FIFO, and a reader that goes away fails it Write",
      () =>
        Effect.gen(function* () {
          const { client, server } = yield* connectedPair
          const dir = tempDir()
          const fifo = join(dir, "fifo")
          expect(spawnSync("mkfifo", [fifo]).status).toBe(0)
          // A reader process, as a container runtime's FIFO reader is: it sips, then copies the rest to a file.
          const reader = spawn("sh", ["-c", `sleep 0.3; cat "${fifo}" > "${join(dir, "copy")}"`])
          const readerExit = Effect.callback<number | null>((resume) => {
            reader.once("exit", (code) => resume(Effect.succeed(code)))
          })
          const fd = yield* openDescriptor(fifo, constants.O_RDWR | constants.O_NONBLOCK)
          const up = pattern(3 << 20, 6)
          const [, moved] = yield* Effect.all([sendAll(client, up), server.pipeTo(fd)], {
            concurrency: "unbounded"
          })
          expect(moved).toBe(up.length)
          closeSync(fd)
          descriptors.delete(fd)
          expect(yield* readerExit).toBe(0)
          expect(sha(readFileSync(join(dir, "copy")))).toBe(sha(up))

          // No reader any more: the write side of a FIFO fails with EPIPE.
          const other = yield* connectedPair
          const gone = join(dir, "gone")
          expect(spawnSync("mkfifo", [gone]).status).toBe(0)
          const readEnd = openSync(gone, constants.O_RDONLY | constants.O_NONBLOCK)
          const writeEnd = yield* openDescriptor(gone, constants.O_WRONLY | constants.O_NONBLOCK)
          closeSync(readEnd)
          yield* Effect.forkChild(other.client.write(pattern(256 << 10, 7)))
          const failed = yield* transportFailure(other.server.pipeTo(writeEnd))
          expect(failed.reason).toBe("Write")
          expect(failed.code).toBe("EPIPE")
          expect(failed.message).toContain(`descriptor ${writeEnd}`)
        }).pipe(Effect.provide(layer))
    )

    it.effect(
      "pipeTo ends at `stop` with the count so far, and fails Closed when its connection closes",
      () =>
        Effect.gen(function* () {
          const { client, server } = yield* connectedPair
          const fd = yield* openDescriptor(join(tempDir(), "out"), "w")
          const stop = yield* Deferred.make<void>()
          const piping = yield* Effect.forkChild(server.pipeTo(fd, { stop: Deferred.await(stop) }))
          yield* client.write(Buffer.from("first"))
          while (statSync(descriptorPath(fd)).size < 5) yield* nextTurn
          // A write through fs reports back a loop turn after the bytes are in the file.
          for (let turn = 0; turn < 5; turn++) yield* nextTurn
          yield* Deferred.succeed(stop, undefined)
          expect(yield* Fiber.join(piping)).toBe(5)

          const other = yield* connectedPair
          expect(yield* failureOnClose(other.server, other.server.pipeTo(fd))).toBe("Closed")
        }).pipe(Effect.provide(layer))
    )

    it.effect("pipeTo and pipeFrom refuse what is not an open descriptor with a typed EBADF", () =>
      Effect.gen(function* () {
        const { server } = yield* connectedPair
        const closedFd = openSync(join(tempDir(), "gone"), "w")
        closeSync(closedFd)
        for (const fd of [-1, 1.5, Number.NaN, 2 ** 40, closedFd]) {
          const into = yield* transportFailure(server.pipeTo(fd))
          expect([into.reason, into.code]).toEqual(["Write", "EBADF"])
          const from = yield* transportFailure(server.pipeFrom(fd))
          expect([from.reason, from.code]).toEqual(["Read", "EBADF"])
        }
      }).pipe(Effect.provide(layer))
    )

    it.effect(
      "pipeFrom sends a file up to its end without half-closing; writing is the caller's again after",
      () =>
        Effect.gen(function* () {
          const { client, server } = yield* connectedPair
          const path = join(tempDir(), "in")
          const up = pattern(6 << 20, 8)
          writeFileSync(path, up)
          const fd = yield* openDescriptor(path, "r")
          const reading = yield* Effect.forkChild(readAll(client))
          expect(yield* server.pipeFrom(fd)).toBe(up.length)
          yield* server.write(Buffer.from("|end"))
          yield* server.endWrite
          expect(sha(yield* Fiber.join(reading))).toBe(sha(Buffer.concat([up, Buffer.from("|end")])))
        }).pipe(Effect.provide(layer))
    )

    it.effect("pipeFrom fails Write when the peer goes away, and the connection with it", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        const path = join(tempDir(), "big")
        writeFileSync(path, pattern(16 << 20, 9))
        const fd = yield* openDescriptor(path, "r")
        const sending = yield* Effect.forkChild(server.pipeFrom(fd))
        // Nobody reads: the sender fills what the socket holds, then waits; the peer then hangs up.
        for (let turn = 0; turn < 20; turn++) yield* nextTurn
        yield* client.close
        const failed = yield* transportFailure(Fiber.join(sending))
        expect(failed.reason).toBe("Write")
        expect((yield* transportFailure(server.write(Buffer.from("x")))).reason).toBe("Write")
      }).pipe(Effect.provide(layer))
    )

    it.effect(
      "pipeFrom waits for a FIFO's writer, refusing writes meanwhile, ends when it closes, and fails Closed with its connection",
      () =>
        Effect.gen(function* () {
          const { client, server } = yield* connectedPair
          const fifo = join(tempDir(), "fifo")
          expect(spawnSync("mkfifo", [fifo]).status).toBe(0)
          const readEnd = yield* openDescriptor(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
          const writer = spawn("sh", [
            "-c",
            `sleep 0.2; printf one > "${fifo}"; sleep 0.1; printf two > "${fifo}"`
          ])
          // The FIFO keeps a writer of ours until the child is done, so that the first printf's close is no end.
          const keepOpen = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
          writer.once("exit", () => closeSync(keepOpen))
          const reading = yield* Effect.forkChild(readAll(client))
          const sending = yield* Effect.forkChild(server.pipeFrom(readEnd))
          yield* nextTurn
          // While it waits for the FIFO, a write would land between its bytes: refused.
          const busy = yield* transportFailure(server.write(Buffer.from("x")))
          expect([busy.reason, busy.code]).toEqual(["Write", "EBUSY"])
          expect(yield* Fiber.join(sending)).toBe(6)
          yield* server.endWrite
          expect((yield* Fiber.join(reading)).toString()).toBe("onetwo")

          const other = yield* connectedPair
          const idle = join(tempDir(), "idle")
          expect(spawnSync("mkfifo", [idle]).status).toBe(0)
          const idleRead = yield* openDescriptor(idle, constants.O_RDONLY | constants.O_NONBLOCK)
          yield* openDescriptor(idle, constants.O_WRONLY | constants.O_NONBLOCK)
          expect(yield* failureOnClose(other.server, other.server.pipeFrom(idleRead))).toBe("Closed")
        }).pipe(Effect.provide(layer))
    )

    it.effect("the sink writes every chunk it is given", () =>
      Effect.gen(function* () {
        const { client, server } = yield* connectedPair
        yield* Stream.run(Stream.make(Buffer.from("s"), Buffer.from("i"), Buffer.from("nk")), client.sink)
        yield* client.endWrite
        expect((yield* readAll(server)).toString()).toBe("sink")
      }).pipe(Effect.provide(layer))
    )
  })

/** How the fake VMM answers a `CONNECT <port>\n` line. */
export type VmmBehaviour = "ok" | "refuse" | "garbage" | "flood" | "silent"

/**
 * A stand-in for Firecracker's hybrid vsock socket at `path`: records the
 * request line and answers as told; "ok" answers `OK 1073741900\n` plus the
 * bytes "early", then echoes.
 */
export const fakeVmm = (path: string, behaviour: VmmBehaviour) =>
  Effect.acquireRelease(
    Effect.callback<{
      readonly server: net.Server
      readonly lines: Array<string>
      readonly sockets: Set<net.Socket>
    }>((resume) => {
      const lines: Array<string> = []
      const sockets = new Set<net.Socket>()
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        let buffered = ""
        const onData = (data: Buffer) => {
          buffered += data.toString("latin1")
          const end = buffered.indexOf("\n")
          if (end < 0) return
          socket.off("data", onData)
          lines.push(buffered.slice(0, end))
          const rest = Buffer.from(buffered.slice(end + 1), "latin1")
          switch (behaviour) {
            case "ok":
              socket.write("OK 1073741900\nearly")
              if (rest.length > 0) socket.write(rest)
              socket.pipe(socket)
              return
            case "refuse":
              socket.end()
              return
            case "garbage":
              socket.write("ERROR no such port\n")
              return
            case "flood":
              socket.write("x".repeat(4096))
              return
            case "silent":
              return
          }
        }
        socket.on("data", onData)
        socket.on("error", () => {})
      })
      server.listen(path, () => resume(Effect.succeed({ server, lines, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.callback<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

/** The hybrid vsock checks, for a layer that serves hybrid://. */
export const hybridSuite = (name: string, layer: Layer.Layer<Transport>) =>
  describe(`${name} hybrid vsock`, () => {
    const port = 0x40000002

    it.effect("dials the VMM socket, sends CONNECT <port>, keeps bytes after OK", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "fc.sock")
        const vmm = yield* fakeVmm(path, "ok")
        const connection = yield* transport.connect(new HybridAddress({ path }), port)
        expect(vmm.lines).toEqual([`CONNECT ${port}`])
        yield* connection.write(Buffer.from(" and echo"))
        yield* connection.endWrite
        // The bytes that came with the VMM's answer come first, also to a forEach consumer.
        expect((yield* readEach(connection)).toString()).toBe("early and echo")
        expect(connection.description).toBe(`hybrid://${path} port ${port}`)
      }).pipe(Effect.provide(layer))
    )

    it.effect("pipeTo writes the bytes that came with OK first, then the rest, into the descriptor", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const dir = tempDir()
        const path = join(dir, "fc.sock")
        yield* fakeVmm(path, "ok")
        const connection = yield* transport.connect(new HybridAddress({ path }), port)
        const fd = yield* openDescriptor(join(dir, "out"), "w")
        yield* connection.write(Buffer.from(" and echo"))
        yield* connection.endWrite
        // Bytes read ahead cannot go through the engine's pipe: they take the chunk-by-chunk path.
        expect(yield* connection.pipeTo(fd)).toBe("early and echo".length)
        expect(readFileSync(join(dir, "out"), "utf8")).toBe("early and echo")
      }).pipe(Effect.provide(layer))
    )

    it.effect("a forEach consumer that throws on the bytes that came with OK dies of it", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "fc.sock")
        yield* fakeVmm(path, "ok")
        const connection = yield* transport.connect(new HybridAddress({ path }), port)
        const { boom, defect } = yield* defectOfThrowingConsumer(connection)
        expect(defect).toBe(boom)
      }).pipe(Effect.provide(layer))
    )

    it.effect("a VMM that closes instead of OK is a refused connect", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "fc.sock")
        yield* fakeVmm(path, "refuse")
        const error = yield* transportFailure(transport.connect(new HybridAddress({ path }), port))
        expect(error.reason).toBe("Connect")
        expect(error.code).toBe("ECONNREFUSED")
        expect(error.message).toContain(String(port))
      }).pipe(Effect.provide(layer))
    )

    it.effect("an answer other than OK <n> is a protocol error, also when it never ends", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        for (const behaviour of ["garbage", "flood"] as const) {
          const path = join(tempDir(), "fc.sock")
          yield* fakeVmm(path, behaviour)
          const error = yield* transportFailure(transport.connect(new HybridAddress({ path }), port))
          expect(error.reason).toBe("PeerRefused")
          expect(error.code).toBe("EPROTO")
          expect(error.message).toContain(behaviour === "garbage" ? '"ERROR no such port\\n"' : "xxxx")
        }
      }).pipe(Effect.provide(layer))
    )

    it.effect("a silent VMM runs into the deadline (given, and the 10 s default)", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "fc.sock")
        yield* fakeVmm(path, "silent")
        const given = yield* Effect.forkChild(
          transport.connect(new HybridAddress({ path }), port, { timeout: "200 millis" })
        )
        yield* expire(given, "200 millis")
        const error = yield* transportFailure(Fiber.join(given))
        expect(error.reason).toBe("ConnectTimeout")
        const byDefault = yield* Effect.forkChild(transport.connect(new HybridAddress({ path }), port))
        yield* expire(byDefault, "10 seconds")
        expect((yield* transportFailure(Fiber.join(byDefault))).reason).toBe("ConnectTimeout")
      }).pipe(Effect.provide(layer))
    )

    it.effect("no VMM socket at all is a connect error", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const error = yield* transportFailure(
          transport.connect(new HybridAddress({ path: join(tempDir(), "none") }), port)
        )
        expect(error.reason).toBe("Connect")
        expect(error.code).toBe("ENOENT")
      }).pipe(Effect.provide(layer))
    )

    it.effect("hybrid listens on <path>_<port>, where the guest's unix dial arrives", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "fc.sock")
        const listener = yield* transport.listen(new HybridAddress({ path }), port)
        expect(statSync(`${path}_${port}`).isSocket()).toBe(true)
        const guest = yield* transport.connect(new UnixAddress({ path }), port)
        const host = yield* listener.accept()
        yield* guest.write(Buffer.from("stdout"))
        yield* guest.endWrite
        expect((yield* readAll(host)).toString()).toBe("stdout")
      }).pipe(Effect.provide(layer))
    )
  })

/** Socket-file security checks, for a layer that serves unix:// and hybrid://. */
/** The uid of `nobody`: the other local user of the socket-file checks. */
export const nobody = 65534

export const socketFileSuite = (name: string, layer: Layer.Layer<Transport>) =>
  describe(`${name} socket files`, () => {
    const port = 0x40000003

    it.effect("creates <path>_<port> 0600 in a new 0700 directory and removes it with the scope", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const dir = join(tempDir(), "nested", "run")
        const path = join(dir, "vm.sock")
        const scope = yield* Scope.make()
        yield* transport.listen(new HybridAddress({ path }), port).pipe(Scope.provide(scope))
        expect(statSync(dir).mode & 0o777).toBe(0o700)
        const file = statSync(`${path}_${port}`)
        expect(file.isSocket()).toBe(true)
        expect(file.mode & 0o777).toBe(0o600)
        yield* Scope.close(scope, Exit.void)
        expect(existsSync(`${path}_${port}`)).toBe(false)
      }).pipe(Effect.provide(layer))
    )

    it.effect("refuses a directory that group or others can write", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        for (const mode of [0o777, 0o1777, 0o720]) {
          const dir = tempDir()
          chmodSync(dir, mode)
          const error = yield* transportFailure(
            transport.listen(new UnixAddress({ path: join(dir, "vm.sock") }), port)
          )
          expect(error.reason).toBe("Listen")
          expect(error.code).toBe("EPERM")
          expect(error.message).toContain("writable by group or others")
          expect(existsSync(join(dir, `vm.sock_${port}`))).toBe(false)
        }
      }).pipe(Effect.provide(layer))
    )

    it.effect("replaces a stale socket file left by a dead process", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "vm.sock")
        const file = `${path}_${port}`
        // A process that dies by SIGKILL while listening leaves its socket file behind.
        const child = spawnSync(process.execPath, [
          "-e",
          `require("net").createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, "SIGKILL"))`
        ])
        expect(child.signal).toBe("SIGKILL")
        expect(statSync(file).isSocket()).toBe(true)
        const listener = yield* transport.listen(new UnixAddress({ path }), port)
        const client = yield* transport.connect(new UnixAddress({ path }), port)
        const server = yield* listener.accept()
        yield* client.endWrite
        expect((yield* readAll(server)).length).toBe(0)
      }).pipe(Effect.provide(layer))
    )

    it.effect("refuses a socket a live process listens on, and a path that is not a socket", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "vm.sock")
        const file = `${path}_${port}`
        const other = net.createServer()
        yield* Effect.acquireRelease(
          Effect.callback<void>((resume) => {
            other.listen(file, () => resume(Effect.void))
          }),
          () => Effect.sync(() => other.close())
        )
        const live = yield* transportFailure(transport.listen(new UnixAddress({ path }), port))
        expect(live.code).toBe("EADDRINUSE")
        const regular = join(tempDir(), "data")
        writeFileSync(`${regular}_${port}`, "precious")
        const notSocket = yield* transportFailure(transport.listen(new UnixAddress({ path: regular }), port))
        expect(notSocket.code).toBe("EEXIST")
        expect(readFileSync(`${regular}_${port}`, "utf8")).toBe("precious")
      }).pipe(Effect.provide(layer))
    )

    it.effect("makes a missing nested directory 0700, serves through it, and removes only what it made", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const kept = join(tempDir(), "kept")
        mkdirSync(kept, { mode: 0o700 })
        const path = join(kept, "a", "b", "vm.sock")
        const scope = yield* Scope.make()
        const listener = yield* transport.listen(new HybridAddress({ path }), port).pipe(Scope.provide(scope))
        expect(statSync(join(kept, "a")).mode & 0o7777).toBe(0o700)
        expect(statSync(join(kept, "a", "b")).mode & 0o7777).toBe(0o700)
        const client = yield* transport.connect(new UnixAddress({ path }), port).pipe(Scope.provide(scope))
        const server = yield* listener.accept().pipe(Scope.provide(scope))
        yield* client.write(Buffer.from("ping"))
        yield* client.endWrite
        expect((yield* readAll(server)).toString()).toBe("ping")
        yield* Scope.close(scope, Exit.void)
        expect(existsSync(join(kept, "a"))).toBe(false)
        expect(existsSync(kept)).toBe(true)
      }).pipe(Effect.provide(layer))
    )

    it.effect(
      "keeps a directory it made while another listener is in it, or something else was put in it",
      () =>
        Effect.gen(function* () {
          const transport = yield* Transport
          const dir = join(tempDir(), "new")
          const address = new UnixAddress({ path: join(dir, "vm.sock") })
          const first = yield* Scope.make()
          const second = yield* Scope.make()
          yield* transport.listen(address, port).pipe(Scope.provide(first))
          yield* transport.listen(address, port + 1).pipe(Scope.provide(second))
          yield* Scope.close(first, Exit.void)
          expect(readdirSync(dir)).toEqual([`vm.sock_${port + 1}`])
          yield* Scope.close(second, Exit.void)
          expect(existsSync(dir)).toBe(false)
          const third = yield* Scope.make()
          yield* transport.listen(address, port).pipe(Scope.provide(third))
          writeFileSync(join(dir, "notes"), "mine")
          yield* Scope.close(third, Exit.void)
          expect(readdirSync(dir)).toEqual(["notes"])
        }).pipe(Effect.provide(layer))
    )

    it.effect("removes the directories it made for a relative path", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const base = tempDir()
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const before = process.cwd()
            process.chdir(base)
            return before
          }),
          (before) => Effect.sync(() => process.chdir(before))
        )
        const scope = yield* Scope.make()
        const address = new HybridAddress({ path: join("relative", "dir", "x") })
        yield* transport.listen(address, port).pipe(Scope.provide(scope))
        expect(statSync(join(base, "relative", "dir", `x_${port}`)).isSocket()).toBe(true)
        yield* Scope.close(scope, Exit.void)
        expect(readdirSync(base)).toEqual([])
      }).pipe(Effect.provide(layer))
    )

    it.effect("refuses an ancestor that others can write unless it is sticky", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const open = join(tempDir(), "open")
        mkdirSync(join(open, "mine"), { recursive: true, mode: 0o700 })
        chmodSync(open, 0o777)
        const address = new UnixAddress({ path: join(open, "mine", "vm.sock") })
        const error = yield* transportFailure(transport.listen(address, port))
        expect(error.code).toBe("EPERM")
        expect(error.message).toContain(`${open} (mode 0777) is writable by group or others and not sticky`)
        expect(readdirSync(join(open, "mine"))).toEqual([])
        chmodSync(open, 0o1777)
        yield* Effect.scoped(transport.listen(address, port))
      }).pipe(Effect.provide(layer))
    )

    // As root (as the host often runs), with a tree that uid 65534 owns.
    it.effect.skipIf(process.getuid?.() !== 0)(
      "refuses a symlinked parent or ancestor and leaves its target untouched",
      () =>
        Effect.gen(function* () {
          const transport = yield* Transport
          const base = tempDir()
          const theirs = join(base, "theirs")
          const rootOwned = join(base, "root-owned")
          mkdirSync(theirs, { mode: 0o755 })
          chownSync(theirs, nobody, nobody)
          mkdirSync(rootOwned, { mode: 0o700 })
          for (const [link, target] of [
            ["link", theirs],
            ["root-link", rootOwned]
          ] as const) {
            symlinkSync(target, join(base, link))
            lchownSync(join(base, link), nobody, nobody)
            for (const path of [join(base, link, "vm.sock"), join(base, link, "new", "vm.sock")]) {
              const error = yield* transportFailure(transport.listen(new HybridAddress({ path }), port))
              expect(error.reason).toBe("Listen")
              expect(error.code).toBe("EPERM")
              expect(error.message).toContain(`${join(base, link)} is a symbolic link (to ${target})`)
              expect(readdirSync(target)).toEqual([])
            }
          }
          expect(statSync(theirs).mode & 0o7777).toBe(0o755)
          expect(statSync(rootOwned).mode & 0o7777).toBe(0o700)
        }).pipe(Effect.provide(layer))
    )

    it.effect.skipIf(process.getuid?.() !== 0)(
      "refuses a directory another uid owns, as parent or ancestor",
      () =>
        Effect.gen(function* () {
          const transport = yield* Transport
          const theirs = join(tempDir(), "theirs")
          mkdirSync(join(theirs, "mine"), { recursive: true, mode: 0o700 })
          chownSync(theirs, nobody, nobody)
          for (const path of [
            join(theirs, "vm.sock"),
            join(theirs, "mine", "vm.sock"),
            join(theirs, "new", "x")
          ]) {
            const error = yield* transportFailure(transport.listen(new UnixAddress({ path }), port))
            expect(error.code).toBe("EPERM")
            expect(error.message).toContain(
              `${theirs} belongs to uid ${nobody}, not to this process (uid 0) or root`
            )
          }
          expect(readdirSync(theirs)).toEqual(["mine"])
          expect(readdirSync(join(theirs, "mine"))).toEqual([])
        }).pipe(Effect.provide(layer))
    )

    it.effect("refuses a path longer than AF_UNIX allows", () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const path = join(tempDir(), "x".repeat(120))
        const listen = yield* transportFailure(transport.listen(new UnixAddress({ path }), port))
        expect(listen.code).toBe("ENAMETOOLONG")
        const connect = yield* transportFailure(transport.connect(new UnixAddress({ path }), port))
        expect(connect.code).toBe("ENAMETOOLONG")
      }).pipe(Effect.provide(layer))
    )
  })
