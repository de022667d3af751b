/**
 * The bridge's writer: everything queued goes out in one gather write, and a
 * call abandoned while still queued never reaches the wire.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Connection } from "@gcs-bridge/transport"
import { Transport } from "@gcs-bridge/transport"
import { Deferred, Effect, Fiber, Metric, Schedule } from "effect"
import { GuestConnection, Metrics } from "../src/index.js"
import * as FakeGuest from "./FakeGuest.js"
import { connectPair, wire } from "./harness.js"

/** `inner` with a gate on `writeAll` and a record of how many frames each write carried. */
const gated = (inner: Connection) => {
  const batches: Array<number> = []
  let entered = 0
  let gate = Deferred.makeUnsafe<void>()
  Deferred.doneUnsafe(gate, Effect.void)
  const connection: Connection = {
    ...inner,
    writeAll: (chunks) =>
      Effect.suspend(() => {
        entered++
        return Effect.andThen(
          Deferred.await(gate),
          Effect.suspend(() => {
            batches.push(chunks.length)
            return inner.writeAll(chunks)
          })
        )
      })
  }
  return {
    connection,
    batches,
    entered: () => entered,
    hold: Effect.sync(() => {
      gate = Deferred.makeUnsafe<void>()
    }),
    release: Effect.suspend(() => Deferred.succeed(gate, undefined))
  }
}

const inFlight = Effect.map(Metric.value(Metrics.rpcInFlight), (state) => state.value)

const eventually = (check: Effect.Effect<boolean>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("1 millis") })

const setup = Effect.gen(function* () {
  const wired = yield* wire()
  const { guest, host } = yield* connectPair(wired)
  const gate = gated(host)
  const fiber = yield* Effect.forkChild(
    GuestConnection.fromConnection(gate.connection, { address: wired.address }).pipe(
      Effect.provideService(Transport, wired.hostTransport)
    )
  )
  yield* FakeGuest.negotiate(guest)
  const gc = yield* Effect.orDie(Fiber.join(fiber))
  return { gc, guest, gate }
})

describe("writer", () => {
  it.live("writes everything that queued up behind a busy write in one writeAll", () =>
    Effect.gen(function* () {
      const { gc, guest, gate } = yield* setup
      const base = yield* inFlight
      yield* gate.hold
      // The first call occupies the writer; 63 more queue up behind it.
      const first = yield* Effect.forkChild(gc.deleteContainerState("c0"))
      yield* eventually(Effect.sync(() => gate.entered() === 2))
      const rest = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 63 }, (_, i) => `c${i + 1}`),
          gc.deleteContainerState,
          {
            concurrency: "unbounded"
          }
        )
      )
      yield* eventually(Effect.map(inFlight, (n) => n === base + 64))
      yield* gate.release
      for (let i = 0; i < 64; i++) yield* guest.reply(yield* guest.next)
      yield* Fiber.join(first)
      yield* Fiber.join(rest)
      // Negotiation, the first call, then the other 63 together.
      expect(gate.batches).toEqual([1, 1, 63])
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("calls made in one run of the scheduler go out together in one writeAll, the writer idle", () =>
    Effect.gen(function* () {
      const { gc, guest, gate } = yield* setup
      // Forked together: Effect starts them in one scheduler run, each queues its frame and waits.
      const calls = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 16 }, (_, i) => `c${i}`),
          gc.deleteContainerState,
          { concurrency: "unbounded" }
        )
      )
      for (let i = 0; i < 16; i++) yield* guest.reply(yield* guest.next)
      yield* Fiber.join(calls)
      expect(gate.batches).toEqual([1, 16])
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("a call interrupted while still queued is never written (its id is skipped)", () =>
    Effect.gen(function* () {
      const { gc, guest, gate } = yield* setup
      const base = yield* inFlight
      yield* gate.hold
      const first = yield* Effect.forkChild(gc.dumpStacks)
      yield* eventually(Effect.sync(() => gate.entered() === 2))
      const queued = yield* Effect.forkChild(gc.deleteContainerState("never"))
      yield* eventually(Effect.map(inFlight, (n) => n === base + 2))
      yield* Fiber.interrupt(queued)
      expect(yield* inFlight).toBe(base + 1)
      yield* gate.release
      const a = yield* guest.next
      expect(a.name).toBe("DumpStacks")
      yield* guest.reply(a)
      yield* Fiber.join(first)
      const next = yield* Effect.forkChild(gc.deleteContainerState("after"))
      const b = yield* guest.next
      expect(b.name).toBe("DeleteContainerState")
      expect(b.body.ContainerId).toBe("after")
      expect(b.id).toBe(a.id + 2)
      yield* guest.reply(b)
      yield* Fiber.join(next)
      expect(yield* guest.backlog).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
