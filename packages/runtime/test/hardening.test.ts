/**
 * What a broken or hostile guest must not do to the host (issue 11): hold a reader forever after an
 * exit, flood the log, grow the host without bound through calls it never reads, hide that a UVM process
 * outlives its scope, or be sent a container document the Linux GCS dies on.
 */
import { Codec, Container, FrameDecoder, Guid, HResult, MessageType, Process } from "@gcs-bridge/protocol"
import { describe, expect, it } from "@effect/vitest"
import type { Connection } from "@gcs-bridge/transport"
import { Transport } from "@gcs-bridge/transport"
import { Effect, Fiber, Metric, Schedule, Stream } from "effect"
import type { Duration } from "effect"
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TestClock } from "effect/testing"
import { GuestConnection, isSignalRefused, Metrics, ProtocolError } from "../src/index.js"
import type { Process as RuntimeProcess } from "../src/index.js"
import * as FakeGuest from "./FakeGuest.js"
import { captureWarnings, connected, wire } from "./harness.js"

const encoder = new TextEncoder()

const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
const inFlight = Effect.map(Metric.value(Metrics.rpcInFlight), (state) => state.value)

describe("a hostile or broken guest", () => {
  /** A process whose guest reports exit 3 and then does `afterExit` with its stdout connection (none when
   * `connect` is false), which it never closes; `consume` reads stdout. Gives what `consume` gave and the exit
   * code. */
  const afterExit = <A, E>(
    consume: (process: RuntimeProcess) => Effect.Effect<A, E>,
    options: {
      readonly limit: Duration.Input
      readonly connect?: boolean
      readonly afterExit?: (stdout: Connection) => Effect.Effect<void>
    }
  ) =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, guest } = yield* connected(wired, { copyAfterExitTimeout: options.limit })
      const run = yield* Effect.forkChild(
        Effect.scoped(
          Effect.flatMap(gc.exec({ CommandLine: "x", CreateStdOutPipe: true }), (process) =>
            Effect.all([consume(process), process.wait])
          )
        )
      )
      const exec = yield* guest.next
      if (exec.name !== "ExecuteProcess") throw new Error(`expected ExecuteProcess, got ${exec.name}`)
      const port = exec.body.Settings.VsockStdioRelaySettings?.StdOut ?? 0
      const stdout =
        options.connect === false
          ? undefined
          : yield* Effect.orDie(wired.transport.connect(wired.address, port))
      yield* guest.reply(exec, new Process.ContainerExecuteProcessResponse({ ProcessId: 7 }))
      const wait = yield* guest.next
      yield* guest.reply(
        wait as FakeGuest.Received & { name: "WaitForProcess" },
        new Process.ContainerWaitForProcessResponse({ ExitCode: 3 })
      )
      if (stdout !== undefined && options.afterExit !== undefined)
        yield* Effect.forkChild(options.afterExit(stdout))
      return yield* Fiber.join(run)
    })

  /** A process whose guest writes "last words" to stdout, reports exit 3 and never closes stdout. */
  const silentAfterExit = <A, E>(consume: (process: RuntimeProcess) => Effect.Effect<A, E>) =>
    afterExit(consume, {
      limit: "20 millis",
      afterExit: (stdout) => Effect.orDie(stdout.write(encoder.encode("last words")))
    })

  it.live(
    "a consumer slower than copyAfterExitTimeout still gets everything the guest sent after the exit",
    () =>
      Effect.gen(function* () {
        const sent = Array.from({ length: 5 }, (_, i) => `chunk ${i};`)
        // The guest sends a part every 50 ms; the consumer spends 150 ms on each chunk, so its pulls find the next
        // parts waiting: only its waits count, and they stay well under the limit.
        const [text, code] = yield* afterExit(
          (process) =>
            Stream.runFold(
              Stream.mapEffect(process.stdout, (chunk) => Effect.as(Effect.sleep("150 millis"), chunk)),
              () => "",
              (text, chunk) => text + FakeGuest.text([chunk])
            ),
          {
            limit: "100 millis",
            afterExit: (stdout) =>
              Effect.andThen(
                Effect.forEach(
                  sent,
                  (part, i) =>
                    Effect.andThen(
                      Effect.sleep(i === 0 ? 0 : 50),
                      Effect.orDie(stdout.write(encoder.encode(part)))
                    ),
                  { discard: true }
                ),
                Effect.orDie(stdout.endWrite)
              )
          }
        )
        expect(text).toBe(sent.join(""))
        expect(code).toBe(3)
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live(
    "a guest that trickles bytes after the exit holds the reader copyAfterExitTimeout in all, not per byte",
    () =>
      Effect.gen(function* () {
        let written = 0
        const started = Date.now()
        const [text] = yield* afterExit((process) => Stream.runCollect(process.stdout), {
          limit: "100 millis",
          // A byte every 30 ms for ever: each pull waits less than the limit.
          afterExit: (stdout) =>
            Effect.forever(
              Effect.andThen(
                Effect.sleep("30 millis"),
                Effect.andThen(
                  Effect.orDie(stdout.write(encoder.encode("."))),
                  Effect.sync(() => written++)
                )
              )
            )
        })
        const elapsed = Date.now() - started
        expect(FakeGuest.text(text).length).toBeGreaterThan(0)
        expect(FakeGuest.text(text).length).toBeLessThanOrEqual(written)
        // Well under what a limit per pull would take (never): about 100 ms of waits, scheduling aside.
        expect(elapsed).toBeLessThan(2_000)
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("stdout the guest never connects ends copyAfterExitTimeout after the exit, empty", () =>
    Effect.gen(function* () {
      const [chunks, code] = yield* afterExit((process) => Stream.runCollect(process.stdout), {
        limit: "20 millis",
        connect: false
      })
      expect(chunks).toEqual([])
      expect(code).toBe(3)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("stdout that stays open and silent after the exit ends after copyAfterExitTimeout", () =>
    Effect.gen(function* () {
      const [chunks, code] = yield* silentAfterExit((process) => Stream.runCollect(process.stdout))
      expect(FakeGuest.text(chunks)).toBe("last words")
      expect(code).toBe(3)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("stdoutTo into a descriptor also ends copyAfterExitTimeout after the exit, with what came", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "gcs-hard-"))
      const path = join(dir, "out")
      const fd = openSync(path, "w")
      yield* Effect.addFinalizer(() => Effect.sync(() => (closeSync(fd), rmSync(dir, { recursive: true }))))
      expect(yield* silentAfterExit((process) => process.stdoutTo(fd))).toEqual([10, 3])
      expect(readFileSync(path, "utf8")).toBe("last words")
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  it.effect("warnings a guest causes per frame are rate-limited and summarised; the metric counts each", () =>
    Effect.gen(function* () {
      const { lines, layer } = captureWarnings()
      yield* Effect.gen(function* () {
        const before = yield* count(Metrics.unknownNotifications)
        const { gc, guest } = yield* connected(yield* wire())
        const notification = (id: string) =>
          Codec.encodeNotification(
            new Container.ContainerNotification({
              ContainerId: id,
              Type: "UnexpectedExit",
              Operation: "None",
              Result: 0
            })
          )
        const flood = Array.from({ length: 1000 }, (_, i) => notification(`nobody-${i}`.padEnd(4096, "x")))
        yield* guest.send(Buffer.concat(flood))
        // A round trip after the flood: every notification before it has been handled.
        const call = yield* Effect.forkChild(gc.deleteContainerState("c1"))
        yield* guest.reply(yield* guest.next)
        yield* Fiber.join(call)
        expect((yield* count(Metrics.unknownNotifications)) - before).toBe(1000)
        const unknown = () => lines.filter((line) => line.includes("not known on this connection"))
        expect(unknown()).toHaveLength(5)
        yield* TestClock.adjust("10 seconds")
        expect(lines.filter((line) => line.startsWith("…"))).toEqual([
          "… 995 more UnknownContainer warnings in the last 10 s (counted in the metrics)"
        ])
        // A new window logs again.
        yield* guest.send(notification("late"))
        const again = yield* Effect.forkChild(gc.deleteContainerState("c2"))
        yield* guest.reply(yield* guest.next)
        yield* Fiber.join(again)
        expect(unknown()).toHaveLength(6)
      }).pipe(Effect.provide(layer))
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  /** A connection whose guest answered the negotiation and then reads nothing; `written()` counts the frames the
   * host handed to the connection since the last `reset`. */
  const deafGuest = (capacity: number) =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const listener = yield* Effect.orDie(
        wired.transport.listen(wired.address, MessageType.LinuxGcsVsockPort)
      )
      const guestEnd = yield* Effect.orDie(
        wired.transport.connect(wired.address, MessageType.LinuxGcsVsockPort)
      )
      const host = yield* Effect.orDie(listener.accept())
      let written = 0
      const counted: Connection = {
        ...host,
        writeAll: (chunks) => Effect.suspend(() => ((written += chunks.length), host.writeAll(chunks)))
      }
      const connecting = yield* Effect.forkChild(
        GuestConnection.fromConnection(counted, {
          address: wired.address,
          writeQueueCapacity: capacity
        }).pipe(Effect.provideService(Transport, wired.transport))
      )
      const [negotiate] = yield* FrameDecoder.frames(guestEnd.stream).pipe(
        Stream.take(1),
        Stream.runCollect,
        Effect.orDie
      )
      yield* Effect.orDie(
        guestEnd.write(
          Codec.encodeResponse("NegotiateProtocol", negotiate!.id, FakeGuest.linuxNegotiateResponse())
        )
      )
      const gc = yield* Effect.orDie(Fiber.join(connecting))
      return { gc, guestEnd, written: () => written, reset: () => void (written = 0) }
    })

  /** Starts `calls` DeleteContainerState calls on a deaf guest; ends once every caller has started and the
   * writer is stuck, giving how many calls are registered beyond `base` and the callers' fiber. */
  const fillQueue = (deaf: Effect.Success<ReturnType<typeof deafGuest>>, calls: number, capacity: number) =>
    Effect.gen(function* () {
      const base = yield* inFlight
      deaf.reset()
      let started = 0
      const callers = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: calls }, (_, i) => `c${i}`),
          (id) => Effect.suspend(() => (started++, deaf.gc.deleteContainerState(id))),
          { concurrency: "unbounded", discard: true }
        )
      )
      const registered = yield* Effect.repeat(
        Effect.map(inFlight, (n) => n - base),
        {
          until: (n) => started === calls && (n === calls || n === deaf.written() + capacity),
          schedule: Schedule.spaced("5 millis")
        }
      )
      return { base, registered, callers }
    })

  it.live(
    "calls to a guest that reads nothing: what waits to be written stays within the queue's capacity",
    () =>
      Effect.gen(function* () {
        const capacity = 64
        const calls = 20_000
        const deaf = yield* deafGuest(capacity)
        const { base, registered, callers } = yield* fillQueue(deaf, calls, capacity)
        // Registered (encoded) calls once every caller has started and the writer is stuck: those handed to
        // the connection plus at most `capacity` queued. Without a bound every call would be registered.
        expect(deaf.written() + capacity).toBeLessThan(calls)
        expect(registered).toBe(deaf.written() + capacity)
        // The callers beyond the bound still wait: the guest now reads and answers every call.
        const guest = yield* FakeGuest.attach(deaf.guestEnd)
        for (let i = 0; i < calls; i++) yield* guest.reply(yield* guest.next)
        yield* Fiber.join(callers)
        expect(yield* inFlight).toBe(base)
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live(
    "an exec waiting for room in a full write queue can be interrupted, and nothing of it is sent",
    () =>
      Effect.gen(function* () {
        const capacity = 4
        const calls = 20_000
        const deaf = yield* deafGuest(capacity)
        const { callers } = yield* fillQueue(deaf, calls, capacity)
        const before = yield* inFlight
        // The exec's request is sent in a masked region (what it starts must be tracked); only its wait for room
        // is interruptible.
        const exec = yield* Effect.forkChild(Effect.scoped(deaf.gc.exec({ CommandLine: "true" })))
        yield* Effect.sleep("20 millis")
        expect(yield* inFlight).toBe(before)
        const exit = yield* Effect.timeoutOption(Fiber.interrupt(exec), "2 seconds")
        expect(exit._tag).toBe("Some")
        // The guest now reads: every frame is one of the other calls.
        const guest = yield* FakeGuest.attach(deaf.guestEnd)
        const names = new Set<string>()
        for (let i = 0; i < calls; i++) {
          const request = yield* guest.next
          names.add(request.name)
          yield* guest.reply(request)
        }
        yield* Fiber.join(callers)
        expect([...names]).toEqual(["DeleteContainerState"])
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a UVM process the guest refuses to signal: kill fails typed, closing its scope warns once", () =>
    Effect.gen(function* () {
      const { lines, layer } = captureWarnings()
      yield* Effect.gen(function* () {
        const { gc, guest } = yield* connected(yield* wire(), { closeTimeout: "1 second" })
        const run = yield* Effect.forkChild(
          Effect.scoped(
            Effect.flatMap(gc.exec({ CommandLine: "sleep 60" }), (process) => Effect.flip(process.kill))
          )
        )
        const exec = yield* guest.next
        yield* guest.reply(
          exec as FakeGuest.Received & { name: "ExecuteProcess" },
          new Process.ContainerExecuteProcessResponse({ ProcessId: 7 })
        )
        expect((yield* guest.next).name).toBe("WaitForProcess")
        // The Linux GCS looks the null container up among its containers, and finds none.
        const refuse = Effect.flatMap(guest.next, (request) => {
          expect(request.name).toBe("SignalProcess")
          expect(request.body.ContainerId).toBe(Guid.NullGuid)
          return guest.fail(request, HResult.HResult.SystemNotFound, "container not found")
        })
        yield* refuse // the explicit kill
        yield* refuse // the scope's close
        const error = yield* Fiber.join(run)
        expect(isSignalRefused(error)).toBe(true)
        expect(lines.filter((line) => line.includes("process 7 keeps running"))).toHaveLength(1)
      }).pipe(Effect.provide(layer))
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a container document the Linux GCS crashes on is refused, and nothing is sent", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const spec = { ociVersion: "1.1.0", root: { path: "rootfs" }, process: { args: ["true"] } }
      const refused = [
        new Container.LinuxHostedSystem({}),
        new Container.LinuxHostedSystem({ OciSpecification: spec }),
        { SchemaVersion: { Major: 2, Minor: 1 }, OciSpecification: { ...spec, linux: null } }
      ]
      for (const config of refused) {
        const error = yield* Effect.flip(Effect.scoped(gc.createContainer("c1", config)))
        expect(error).toBeInstanceOf(ProtocolError)
        expect(error.message).toContain("a Linux guest needs an OciSpecification")
      }
      const created = yield* Effect.forkChild(Effect.scoped(gc.createContainer("c1", FakeGuest.lcow())))
      // The first frame after the negotiation (id 0) is the accepted Create.
      const create = yield* guest.next
      expect([create.name, create.id]).toEqual(["Create", 1])
      yield* guest.reply(create)
      // Closing the never-started container terminates it without waiting for a notification.
      yield* guest.reply(yield* guest.next)
      yield* Fiber.join(created)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
