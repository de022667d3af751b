/**
 * What happens when the guest goes away, or the caller gives up, at every
 * step: every waiter is released with a typed error, every finalizer runs,
 * and no listener, connection, fiber or guest-side object is left behind.
 */
import { ModifySettings } from "@gcs-bridge/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Transport } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Fiber, Schedule, Scope, Stream } from "effect"
import type { GuestConnectionService } from "../src/index.js"
import { BridgeClosed, GuestConnection } from "../src/index.js"
import * as FakeGuest from "./FakeGuest.js"
import { makeTracker, type Tracker, wire, type Wired } from "./harness.js"

/** The host (its fibers tracked by `supervisor`) and a simple guest, in the current scope. */
const start = (wired: Wired, supervisor: Tracker, options: FakeGuest.SimpleGuestOptions) =>
  Effect.gen(function* () {
    const host = yield* Effect.forkChild(
      GuestConnection.make({ address: wired.address, closeTimeout: "10 seconds" }).pipe(
        Effect.provideService(Transport, wired.hostTransport),
        supervisor.track
      )
    )
    const guest = yield* FakeGuest.dial(wired.transport, wired.address)
    const state = yield* FakeGuest.serveSimple(guest, wired.transport, wired.address, options)
    const gc = yield* Effect.orDie(Fiber.join(host))
    return { gc, guest, state }
  })

const encoder = new TextEncoder()

/** Every kind of call, in lifecycle order. */
const scenario = (gc: GuestConnectionService) =>
  Effect.scoped(
    Effect.gen(function* () {
      const container = yield* gc.createContainer("c1", FakeGuest.lcow())
      yield* container.start
      const process = yield* container.exec({ CreateStdInPipe: true, CreateStdOutPipe: true })
      const output = yield* Effect.forkChild(Stream.runDrain(process.stdout))
      yield* container.properties(["ProcessList"])
      yield* container.modify(
        new ModifySettings.ModificationRequest({
          RequestType: "Update",
          ResourceType: "ContainerConstraints"
        })
      )
      yield* Stream.run(Stream.make(encoder.encode("x")), process.stdin)
      yield* process.resizeConsole(80, 25)
      yield* process.closeStdin
      yield* Fiber.join(output)
      yield* process.wait
      yield* container.terminate
      yield* container.wait
      yield* gc.dumpStacks
    })
  )

/** The requests `scenario` sends, in order. */
const scenarioRequests = [
  "Create",
  "Start",
  "ExecuteProcess",
  "WaitForProcess",
  "GetProperties",
  "ModifySettings",
  "ResizeConsole",
  "ShutdownForced",
  "DumpStacks"
] as const

/** Waits until `check` holds (no deadline of its own: the test's timeout bounds it). */
const eventually = (check: Effect.Effect<boolean>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("2 millis") })

const guestIsClean = (state: FakeGuest.SimpleGuestState) =>
  Effect.gen(function* () {
    for (const process of state.processes.values()) if (!(yield* Deferred.isDone(process.exit))) return false
    return state.containers.size === 0
  })

const expectNothingLeft = (wired: Wired, supervisor: Tracker) =>
  Effect.gen(function* () {
    expect(wired.counts.listeners).toBe(0)
    expect(wired.counts.connections).toBe(0)
    expect(yield* supervisor.live).toBe(0)
  })

describe("the guest dropping the connection", () => {
  it.live("before any call: every call fails with BridgeClosed, nothing is left", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const supervisor = makeTracker()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { gc, guest } = yield* start(wired, supervisor, {})
          yield* guest.close
          const closed = yield* gc.closed
          expect(closed.reason).toBe("EndOfStream")
          const error = yield* Effect.flip(scenario(gc).pipe(supervisor.track))
          expect(error).toBeInstanceOf(BridgeClosed)
          expect(yield* Effect.flip(gc.dumpStacks)).toBe(closed)
          const opened = yield* gc.openContainer("c9")
          expect((yield* opened.wait)._tag).toBe("ConnectionLost")
        })
      )
      yield* expectNothingLeft(wired, supervisor)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  for (const during of scenarioRequests) {
    it.live(`during ${during}: the waiter and every later call get BridgeClosed, finalizers run`, () =>
      Effect.gen(function* () {
        const wired = yield* wire()
        const supervisor = makeTracker()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const { gc } = yield* start(wired, supervisor, {
              override: (request, guest) =>
                request.name === during ? Effect.as(guest.close, true) : Effect.succeed(false)
            })
            const error = yield* Effect.flip(scenario(gc).pipe(supervisor.track))
            expect(error).toBeInstanceOf(BridgeClosed)
            expect((error as BridgeClosed).reason).toBe("EndOfStream")
            expect(yield* Effect.flip(gc.dumpStacks)).toBeInstanceOf(BridgeClosed)
          })
        )
        yield* expectNothingLeft(wired, supervisor)
      }).pipe(Effect.provide(Transport.layerMemory))
    )
  }

  it.live("closing the connection's scope fails pending calls with BridgeClosed (Closed)", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const supervisor = makeTracker()
      const scope = yield* Scope.make()
      // The guest takes DumpStacks and never answers it.
      const { gc, state } = yield* Scope.provide(
        start(wired, supervisor, { override: (request) => Effect.succeed(request.name === "DumpStacks") }),
        scope
      )
      const pending = yield* Effect.forkChild(Effect.flip(gc.dumpStacks))
      yield* eventually(Effect.sync(() => state.requests.some((r) => r.name === "DumpStacks")))
      yield* Scope.close(scope, Exit.void)
      const error = yield* Fiber.join(pending)
      expect(error).toBeInstanceOf(BridgeClosed)
      expect((error as BridgeClosed).reason).toBe("Closed")
      expect(yield* Effect.flip(gc.dumpStacks)).toBe(error)
      yield* expectNothingLeft(wired, supervisor)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  for (const step of ["Create", "ExecuteProcess"] as const) {
    it.live(
      `closing the connection ends after a ${step} the caller gave up on and the guest never answers`,
      () =>
        Effect.gen(function* () {
          const wired = yield* wire()
          const supervisor = makeTracker()
          const scope = yield* Scope.make()
          const { gc, state } = yield* Scope.provide(
            start(wired, supervisor, { override: (request) => Effect.succeed(request.name === step) }),
            scope
          )
          const attempt =
            step === "Create"
              ? Effect.asVoid(gc.createContainer("c1", FakeGuest.lcow()))
              : Effect.flatMap(gc.createContainer("c1", FakeGuest.lcow()), (container) =>
                  Effect.asVoid(container.exec({ CreateStdOutPipe: true }))
                )
          // The caller's deadline interrupts the call; the host keeps a reaper waiting for the late answer.
          const gaveUp = yield* Effect.forkChild(
            Effect.scoped(attempt).pipe(Effect.timeout("50 millis"), Effect.flip, supervisor.track)
          )
          yield* eventually(Effect.sync(() => state.requests.some((r) => r.name === step)))
          expect((yield* Fiber.join(gaveUp))._tag).toBe("TimeoutError")
          // The reaper must not hold up the bridge's close, which is what releases it.
          const closed = yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("5 seconds"), Effect.option)
          expect(closed._tag).toBe("Some")
          yield* expectNothingLeft(wired, supervisor)
        }).pipe(Effect.provide(Transport.layerMemory))
    )
  }

  it.live("closing a container whose init never ran does not wait for an exit that cannot come", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const supervisor = makeTracker()
      const scope = yield* Scope.make()
      // As the Linux GCS: ShutdownForced of a created-but-never-started container succeeds, and no notification follows.
      const { gc, guest, state } = yield* Scope.provide(
        start(wired, supervisor, {
          override: (request, fake) =>
            request.name === "ShutdownForced" ? Effect.as(fake.reply(request), true) : Effect.succeed(false)
        }),
        scope
      )
      const containerScope = yield* Scope.make()
      yield* Scope.provide(gc.createContainer("c1", FakeGuest.lcow()), containerScope)
      // closeTimeout is 10 s here: a close that waited for the notification would exceed the bound below.
      const closed = yield* Scope.close(containerScope, Exit.void).pipe(
        Effect.timeout("5 seconds"),
        Effect.option
      )
      expect(closed._tag).toBe("Some")
      expect(state.requests.map((r) => r.name)).toContain("ShutdownForced")
      yield* guest.close
      yield* Scope.close(scope, Exit.void)
      yield* expectNothingLeft(wired, supervisor)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live(
    "while processes and containers are waited for: wait fails, Container.wait reports ConnectionLost",
    () =>
      Effect.gen(function* () {
        const wired = yield* wire()
        const supervisor = makeTracker()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const { gc, guest } = yield* start(wired, supervisor, {})
            yield* Effect.scoped(
              Effect.gen(function* () {
                const container = yield* gc.createContainer("c1", FakeGuest.lcow())
                const process = yield* container.exec({ CreateStdInPipe: true, CreateStdOutPipe: true })
                // Stdio connections are independent of the bridge: they stay readable until the scope closes.
                const waits = yield* Effect.forkChild(
                  Effect.all([Effect.flip(process.wait), container.wait], { concurrency: "unbounded" })
                )
                yield* guest.close
                const [processError, containerExit] = yield* Fiber.join(waits)
                expect(processError).toBeInstanceOf(BridgeClosed)
                expect(containerExit._tag).toBe("ConnectionLost")
                if (containerExit._tag === "ConnectionLost") expect(containerExit.error).toBe(processError)
                expect(yield* Effect.flip(process.exitCode)).toBe(processError)
              }).pipe(supervisor.track)
            )
          })
        )
        yield* expectNothingLeft(wired, supervisor)
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("after the calls: later calls fail at once and the scopes still close cleanly", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const supervisor = makeTracker()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { gc, guest } = yield* start(wired, supervisor, {})
          yield* scenario(gc).pipe(supervisor.track)
          // A container and a process still open when the guest goes.
          const container = yield* gc.createContainer("c2", FakeGuest.lcow())
          const process = yield* container.exec({ CreateStdInPipe: true })
          yield* guest.close
          yield* gc.closed
          expect(yield* Effect.flip(process.kill)).toBeInstanceOf(BridgeClosed)
          expect(yield* Effect.flip(container.terminate)).toBeInstanceOf(BridgeClosed)
          expect((yield* container.wait)._tag).toBe("ConnectionLost")
        }).pipe(supervisor.track)
      )
      yield* expectNothingLeft(wired, supervisor)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})

describe("interrupting the caller", () => {
  for (const [step, held] of scenarioRequests.slice(0, 8).entries()) {
    it.live(`at step ${step + 1} (${held} in flight) leaves nothing behind in host or guest`, () =>
      Effect.gen(function* () {
        const wired = yield* wire()
        const supervisor = makeTracker()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const reached = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            let seen = 0
            const { gc, state } = yield* start(wired, supervisor, {
              // Hold the step's request (the first of its kind) until the caller has been interrupted.
              override: (request) =>
                request.name === held && seen++ === 0
                  ? Effect.andThen(
                      Deferred.succeed(reached, undefined),
                      Effect.as(Deferred.await(release), false)
                    )
                  : Effect.succeed(false)
            })
            const fiber = yield* Effect.forkChild(scenario(gc).pipe(supervisor.track))
            yield* Deferred.await(reached)
            // Interrupting waits for the scenario's finalizers, which may need the held answer.
            yield* Effect.forkChild(Fiber.interrupt(fiber))
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.await(fiber)
            // Late answers are matched and dropped; what the guest created late is reaped.
            yield* eventually(guestIsClean(state))
            // The bridge survived all of it.
            expect(yield* gc.dumpStacks).toContain("goroutine")
          })
        )
        yield* expectNothingLeft(wired, supervisor)
      }).pipe(Effect.provide(Transport.layerMemory))
    )
  }

  it.live("a wait that is interrupted can be waited for again", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const supervisor = makeTracker()
      const { gc } = yield* start(wired, supervisor, { exitCode: 5 })
      yield* Effect.scoped(
        Effect.gen(function* () {
          const process = yield* gc.exec({ CreateStdInPipe: true })
          const first = yield* Effect.forkChild(process.wait)
          yield* Fiber.interrupt(first)
          yield* process.closeStdin
          expect(yield* process.wait).toBe(5)
        })
      )
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
