/**
 * The runtime against the real guest of `@gcs-bridge/guest` (real local
 * processes), over every transport that works on this machine.
 */
import { Container, Properties } from "@gcs-bridge/protocol"
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Fault, Guest } from "@gcs-bridge/guest"
import type { Address } from "@gcs-bridge/transport"
import { HybridAddress, Transport, UnixAddress } from "@gcs-bridge/transport"
import { Effect, Fiber, Layer, Metric, Option, Schedule, Stream } from "effect"
import type { GuestConnectionConfig } from "../src/index.js"
import {
  BridgeClosed,
  GuestConnection,
  isNotFound,
  isSystemNotFound,
  Metrics,
  ProtocolError
} from "../src/index.js"
import { text } from "./FakeGuest.js"
import { makeTracker, wire, type Wired } from "./harness.js"

const encoder = new TextEncoder()

/** A host made with `make` and the real guest dialling it (one connection), in the current scope. */
const withGuest = (
  wired: Wired,
  config: Partial<GuestConnectionConfig> = {},
  faults: ReadonlyArray<Fault.Fault> = []
) =>
  Effect.gen(function* () {
    const host = yield* Effect.forkChild(
      GuestConnection.make({ address: wired.address, ...config }).pipe(
        Effect.provideService(Transport, wired.hostTransport)
      )
    )
    yield* Guest.run({
      address: Guest.addressForHost(wired.address),
      once: true,
      faults,
      retryInterval: "5 millis",
      console: "none"
    }).pipe(Effect.ignore, Effect.provideService(Transport, wired.transport), Effect.forkScoped)
    return yield* Fiber.join(host)
  })

const containerConfig = (id: string, args: ReadonlyArray<string>) =>
  new Container.LinuxHostedSystem({
    OciBundlePath: `/run/gcs/c/${id}`,
    OciSpecification: {
      ociVersion: "1.1.0",
      process: { args: [...args], cwd: "/", env: ["PATH=/usr/bin:/bin"] },
      root: { path: `/run/gcs/c/${id}/rootfs` },
      linux: {}
    },
    ScratchDirPath: `/run/gcs/c/${id}/scratch`
  })

const lifecycle = (wired: Wired) =>
  Effect.gen(function* () {
    const supervisor = makeTracker()
    yield* Effect.scoped(
      Effect.gen(function* () {
        const gc = yield* withGuest(wired)
        expect(gc.os).toBe("linux")
        expect(gc.capabilities.SignalProcessSupported).toBe(true)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const container = yield* gc.createContainer("c1", containerConfig("c1", ["cat"]))
            yield* container.start
            // The init process: no OciProcess.
            const init = yield* container.exec({ CreateStdInPipe: true, CreateStdOutPipe: true })
            const output = yield* Effect.forkChild(Stream.runCollect(init.stdout))
            yield* Stream.run(Stream.make(encoder.encode("hello "), encoder.encode("guest")), init.stdin)
            const listed = yield* container.properties([Properties.PropertyType.ProcessList])
            expect(listed.ProcessList.map((p) => p.ProcessId)).toContain(init.pid)
            yield* init.closeStdin
            expect(text(yield* Fiber.join(output))).toBe("hello guest")
            expect(yield* init.wait).toBe(0)
            const exit = yield* container.wait
            expect(exit._tag).toBe("Exited")
            if (exit._tag === "Exited") expect(exit.notification.ContainerId).toBe("c1")
          })
        )
        yield* gc.deleteContainerState("c1")

        // A UVM process with all three streams and an exit code.
        const code = yield* Effect.scoped(
          Effect.gen(function* () {
            const process = yield* gc.exec({
              CommandArgs: ["sh", "-c", "echo out; echo err 1>&2; exit 7"],
              CreateStdOutPipe: true,
              CreateStdErrPipe: true
            })
            const [out, err] = yield* Effect.all(
              [Stream.runCollect(process.stdout), Stream.runCollect(process.stderr)],
              {
                concurrency: 2
              }
            )
            expect(text(out)).toBe("out\n")
            expect(text(err)).toBe("err\n")
            return yield* process.wait
          })
        )
        expect(code).toBe(7)
      })
    ).pipe(supervisor.track)
    expect(wired.counts.listeners).toBe(0)
    expect(wired.counts.connections).toBe(0)
    expect(yield* supervisor.live).toBe(0)
  })

const inTempDir = <A, E, R>(f: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "gcs-rt-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.flatMap(f))

const counter = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (s) => s.count)

describe("against the real guest", () => {
  it.live("full lifecycle over the in-memory transport", () =>
    Effect.flatMap(wire(), lifecycle).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("full lifecycle over Unix sockets (layerNode)", () =>
    inTempDir((dir) => Effect.flatMap(wire(new UnixAddress({ path: join(dir, "vm.sock") })), lifecycle)).pipe(
      Effect.provide(Transport.layerNode)
    )
  )

  it.live(
    "full lifecycle over hybrid vsock (layerNode: host on hybrid://, guest on the _<port> sockets)",
    () =>
      inTempDir((dir) =>
        Effect.flatMap(wire(new HybridAddress({ path: join(dir, "fc.sock") })), lifecycle)
      ).pipe(Effect.provide(Transport.layerNode))
  )

  it.live("full lifecycle over the native engine on AF_UNIX (Transport.layer)", () =>
    inTempDir((dir) =>
      Effect.flatMap(wire(new UnixAddress({ path: join(dir, "vm.sock") }) as Address), lifecycle)
    ).pipe(Effect.provide(Transport.layer))
  )

  // What a container runtime does with a process's output: relays it into descriptors it opened (FIFOs, files).
  const relayIntoDescriptors = (wired: Wired, dir: string) =>
    Effect.scoped(
      Effect.gen(function* () {
        const gc = yield* withGuest(wired)
        const bytes = (stream: string) => counter(Metric.withAttributes(Metrics.stdioBytes, { stream }))
        const before = [yield* bytes("stdout"), yield* bytes("stderr"), yield* bytes("stdin")]
        const descriptor = (name: string) =>
          Effect.acquireRelease(
            Effect.sync(() => openSync(join(dir, name), "w")),
            (fd) => Effect.sync(() => closeSync(fd))
          )
        const [outFd, errFd] = [yield* descriptor("out"), yield* descriptor("err")]
        const script = "head -c 3000000 /dev/zero | tr '\\0' x; echo err 1>&2; exit 3"
        const process = yield* gc.exec({
          CommandArgs: ["sh", "-c", script],
          CreateStdOutPipe: true,
          CreateStdErrPipe: true
        })
        const [out, err] = yield* Effect.all([process.stdoutTo(outFd), process.stderrTo(errFd)], {
          concurrency: 2
        })
        expect(yield* process.wait).toBe(3)
        expect([out, err]).toEqual([3_000_000, 4])
        expect(readFileSync(join(dir, "out"), "latin1")).toBe("x".repeat(3_000_000))
        expect(readFileSync(join(dir, "err"), "latin1")).toBe("err\n")
        // Input from a descriptor: a file of 2 MB into `wc -c`, whose stdin ends with the file.
        writeFileSync(join(dir, "in"), Buffer.alloc(2_000_000, 7))
        const inFd = yield* Effect.acquireRelease(
          Effect.sync(() => openSync(join(dir, "in"), "r")),
          (fd) => Effect.sync(() => closeSync(fd))
        )
        const counting = yield* gc.exec({
          CommandArgs: ["wc", "-c"],
          CreateStdInPipe: true,
          CreateStdOutPipe: true
        })
        const [sent, counted] = yield* Effect.all(
          [counting.stdinFrom(inFd), Stream.runCollect(counting.stdout)],
          {
            concurrency: 2
          }
        )
        expect(sent).toBe(2_000_000)
        expect(text(counted).trim()).toBe("2000000")
        expect(yield* counting.wait).toBe(0)
        // No pipe requested: nothing to relay out, and no stdin to send into.
        const quiet = yield* gc.exec({ CommandArgs: ["true"] })
        expect(yield* quiet.stdoutTo(outFd)).toBe(0)
        expect((yield* Effect.flip(quiet.stdinFrom(inFd))).reason).toBe("Closed")
        const after = [yield* bytes("stdout"), yield* bytes("stderr"), yield* bytes("stdin")]
        expect(after.map((n, i) => n - before[i]!)).toEqual([3_000_000 + 8, 4, 2_000_000])
      })
    )

  // A relay that runs for hours must show in the byte counter while it runs, not only at its end.
  const countsWhileRunning = (wired: Wired, dir: string) =>
    Effect.scoped(
      Effect.gen(function* () {
        const gc = yield* withGuest(wired)
        const bytes = counter(Metric.withAttributes(Metrics.stdioBytes, { stream: "stdout" }))
        const before = yield* bytes
        const fd = yield* Effect.acquireRelease(
          Effect.sync(() => openSync(join(dir, "long"), "w")),
          (fd) => Effect.sync(() => closeSync(fd))
        )
        const process = yield* gc.exec({
          CommandArgs: ["sh", "-c", "head -c 3000000 /dev/zero; sleep 30"],
          CreateStdOutPipe: true
        })
        yield* Effect.forkScoped(process.stdoutTo(fd))
        // Counted once the source went quiet: all of it, while the process still runs.
        while ((yield* bytes) - before < 3_000_000) yield* Effect.sleep("5 millis")
        expect(yield* process.exitCode).toEqual(Option.none())
        yield* process.kill.pipe(Effect.ignore)
      })
    )

  it.live("a relay into a descriptor counts its bytes while it runs (native engine and in-memory)", () =>
    Effect.gen(function* () {
      yield* inTempDir((dir) =>
        Effect.flatMap(wire(new UnixAddress({ path: join(dir, "vm.sock") }) as Address), (wired) =>
          countsWhileRunning(wired, dir)
        )
      ).pipe(Effect.provide(Transport.layer))
      yield* inTempDir((dir) => Effect.flatMap(wire(), (wired) => countsWhileRunning(wired, dir))).pipe(
        Effect.provide(Transport.layerMemory)
      )
    })
  )

  it.live(
    "stdoutTo / stderrTo / stdinFrom relay through descriptors: in the kernel over the native engine",
    () =>
      inTempDir((dir) =>
        Effect.flatMap(wire(new UnixAddress({ path: join(dir, "vm.sock") }) as Address), (wired) =>
          relayIntoDescriptors(wired, dir)
        )
      ).pipe(Effect.provide(Transport.layer))
  )

  it.live(
    "stdoutTo / stderrTo / stdinFrom relay through descriptors: chunk by chunk over the in-memory transport",
    () =>
      inTempDir((dir) => Effect.flatMap(wire(), (wired) => relayIntoDescriptors(wired, dir))).pipe(
        Effect.provide(Transport.layerMemory)
      )
  )

  it.live(
    "Go rules against a real guest: kill after exit is 'not delivered', shutdown of an unknown container succeeds",
    () =>
      Effect.gen(function* () {
        const wired = yield* wire()
        const gc = yield* withGuest(wired)
        const ghost = yield* gc.openContainer("ghost")
        yield* ghost.shutdown
        yield* ghost.terminate
        yield* Effect.scoped(
          Effect.gen(function* () {
            const container = yield* gc.createContainer("c2", containerConfig("c2", ["sleep", "60"]))
            const init = yield* container.exec({})
            expect(yield* init.signal(15)).toBe(true)
            expect(yield* init.wait).toBe(143)
            const exit = yield* container.wait
            if (exit._tag === "Exited") expect(exit.notification.Type).toBe("GracefulExit")
            else throw new Error("expected an exit notification")
            expect(yield* init.kill).toBe(false)
          })
        )
        // The UVM cannot signal processes on Linux (0xC037010E): a typed error, not a crash.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const process = yield* gc.exec({ CommandArgs: ["true"] })
            yield* process.wait
            const error = yield* Effect.flip(process.kill)
            expect(error._tag).toBe("GuestError")
            expect(isNotFound(error)).toBe(false)
          })
        )
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("closing scopes kills what still runs in the guest", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const gc = yield* withGuest(wired)
      const [init, exec] = yield* Effect.scoped(
        Effect.gen(function* () {
          const container = yield* gc.createContainer("c3", containerConfig("c3", ["sleep", "60"]))
          const init = yield* container.exec({})
          const exec = yield* container.exec({ OciProcess: { args: ["sleep", "60"], cwd: "/" } })
          return [init, exec] as const
        })
      )
      // Both were killed (SIGKILL: 128 + 9) when their scope closed.
      expect(yield* exec.wait).toBe(137)
      expect(yield* init.wait).toBe(137)
      yield* gc.deleteContainerState("c3")
      const error = yield* Effect.flip(gc.deleteContainerState("c3"))
      expect(isSystemNotFound(error)).toBe(true)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("drop-after: the guest hanging up mid-call fails every waiter with BridgeClosed", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const gc = yield* withGuest(wired, {}, [Fault.Fault.DropAfter({ messages: 2 })])
      yield* gc.dumpStacks
      const error = yield* Effect.flip(gc.dumpStacks)
      expect(error).toBeInstanceOf(BridgeClosed)
      expect((error as BridgeClosed).reason).toBe("EndOfStream")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("oversize-after: an oversize frame is a typed protocol death", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const gc = yield* withGuest(wired, {}, [Fault.Fault.OversizeAfter({ messages: 1 })])
      const error = (yield* Effect.flip(gc.dumpStacks)) as BridgeClosed
      expect(error.reason).toBe("Protocol")
      expect((error.cause as ProtocolError).reason).toBe("Oversize")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("malformed-after fails one call; unknown-id-after and flood are counted, not fatal", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const unknownIds = yield* counter(Metrics.unknownResponses)
      const unknownContainers = yield* counter(Metrics.unknownNotifications)
      const gc = yield* withGuest(wired, {}, [
        Fault.Fault.Flood({ notifications: 3 }),
        Fault.Fault.MalformedAfter({ messages: 4 }),
        Fault.Fault.UnknownIdAfter({ messages: 5 })
      ])
      // Messages so far: the negotiate response and 3 notifications; the 5th is malformed.
      const error = yield* Effect.flip(gc.dumpStacks)
      expect(error).toBeInstanceOf(ProtocolError)
      expect((error as ProtocolError).reason).toBe("InvalidJson")
      // The 6th carries an unknown id: that call never gets its answer; the bridge goes on.
      const lost = yield* Effect.forkChild(gc.dumpStacks)
      yield* counter(Metrics.unknownResponses).pipe(
        Effect.repeat({ until: (n) => n > unknownIds, schedule: Schedule.spaced("2 millis") })
      )
      yield* Fiber.interrupt(lost)
      expect(yield* gc.dumpStacks).toContain("bridge")
      expect((yield* counter(Metrics.unknownResponses)) - unknownIds).toBe(1)
      expect((yield* counter(Metrics.unknownNotifications)) - unknownContainers).toBe(3)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("Guest.layer and GuestConnection.layer compose", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const layer = GuestConnection.layer({ address: wired.address }).pipe(
        Layer.provideMerge(
          Guest.layer({ address: wired.address, retryInterval: "5 millis", console: "none" })
        ),
        Layer.provide(Layer.succeed(Transport, wired.transport))
      )
      const stacks = yield* Effect.flatMap(GuestConnection, (gc) => gc.dumpStacks).pipe(Effect.provide(layer))
      expect(stacks.length).toBeGreaterThan(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
