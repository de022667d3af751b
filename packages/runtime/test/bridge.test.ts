import { Envelope, Frame, Guid, HResult, Uvm } from "@gcs-bridge/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Transport } from "@gcs-bridge/transport"
import { Effect, Fiber, Metric } from "effect"
import {
  BridgeClosed,
  GuestConnection,
  GuestError,
  isSystemNotFound,
  Metrics,
  ProtocolError
} from "../src/index.js"
import { linuxNegotiateResponse, type Received } from "./FakeGuest.js"
import { connected, connectPair, wire } from "./harness.js"

const counter = (metric: Metric.Counter<number>, ...labels: Array<[string, string]>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, Object.fromEntries(labels))), (state) => state.count)

const deathsOf = (reason: string) => counter(Metrics.bridgeDeaths, ["reason", reason])

/** Collects `n` requests from the guest. */
const take = (guest: { readonly next: Effect.Effect<Received> }, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => guest.next)

describe("bridge", () => {
  it.effect("negotiates first with message id 0 and an empty container id, then counts ids up", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { guest, host } = yield* connectPair(wired)
      const fiber = yield* Effect.forkChild(
        GuestConnection.fromConnection(host, { address: wired.address }).pipe(
          Effect.provideService(Transport, wired.hostTransport)
        )
      )
      const negotiate = yield* guest.next
      expect(negotiate.name).toBe("NegotiateProtocol")
      expect(negotiate.id).toBe(0)
      expect(negotiate.body.ContainerId).toBe("")
      expect(negotiate.body.ActivityId).toBe(Guid.NullGuid)
      // Nothing else may be sent before the negotiation is answered.
      expect(yield* guest.backlog).toBe(0)
      yield* guest.reply(negotiate as Received & { name: "NegotiateProtocol" }, linuxNegotiateResponse())
      const gc = yield* Fiber.join(fiber)
      expect(gc.protocol).toBe(4)
      expect(gc.os).toBe("linux")
      expect(gc.isOci).toBe(false)
      expect(gc.capabilities.DumpStacksSupported).toBe(true)

      const stacks = yield* Effect.forkChild(gc.dumpStacks)
      const request = yield* guest.next
      expect(request.name).toBe("DumpStacks")
      expect(request.id).toBe(1)
      expect(request.body.ContainerId).toBe(Guid.NullGuid)
      yield* guest.reply(
        request as Received & { name: "DumpStacks" },
        new Uvm.DumpStacksResponse({ GuestStacks: "x" })
      )
      expect(yield* Fiber.join(stacks)).toBe("x")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("matches responses that arrive out of order", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const calls = yield* Effect.forkChild(
        Effect.all(
          ["a", "b", "c", "d"].map((id) => gc.deleteContainerState(id).pipe(Effect.result)),
          { concurrency: "unbounded" }
        )
      )
      const requests = yield* take(guest, 4)
      // Answer in reverse order, each with its own outcome.
      for (const request of [...requests].reverse()) {
        if (request.body.ContainerId === "c")
          yield* guest.fail(request, HResult.HResult.SystemNotFound, "no c")
        else yield* guest.reply(request)
      }
      const results = yield* Fiber.join(calls)
      expect(results.map((r) => r._tag)).toEqual(["Success", "Success", "Failure", "Success"])
      const failure = results[2]
      if (failure?._tag !== "Failure") throw new Error("expected a failure")
      expect(failure.failure).toBeInstanceOf(GuestError)
      expect(isSystemNotFound(failure.failure)).toBe(true)
      const error = failure.failure as GuestError
      expect(error.hresult).toBe(0xc037010e)
      expect(error.proc).toBe("DeleteContainerState")
      expect(error.containerId).toBe("c")
      expect(error.message).toBe("no c")
      expect(error.errorRecords).toHaveLength(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("carries 1,000 concurrent calls, answered in a shuffled order", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const n = 1000
      const calls = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: n }, (_, i) => `c${i}`),
          (id) => Effect.as(gc.deleteContainerState(id), id),
          {
            concurrency: "unbounded"
          }
        )
      )
      const requests = yield* take(guest, n)
      const ids = requests.map((r) => r.id)
      expect(new Set(ids).size).toBe(n)
      // Deterministic shuffle.
      const order = requests.map((r, i) => ({ r, k: (i * 7919) % n })).sort((a, b) => a.k - b.k)
      for (const { r } of order) yield* guest.reply(r)
      const done = yield* Fiber.join(calls)
      expect(done).toHaveLength(n)
      expect(done[999]).toBe("c999")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("routes notifications interleaved with responses", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const c1 = yield* gc.openContainer("c1")
      const c2 = yield* gc.openContainer("c2")
      const call = yield* Effect.forkChild(gc.deleteContainerState("x"))
      const request = yield* guest.next
      yield* guest.notify("c2", "ForcedExit")
      yield* guest.reply(request)
      yield* guest.notify("c1")
      yield* Fiber.join(call)
      const exit2 = yield* c2.wait
      const exit1 = yield* c1.wait
      expect(exit2._tag).toBe("Exited")
      expect(exit1._tag).toBe("Exited")
      if (exit2._tag === "Exited") expect(exit2.notification.Type).toBe("ForcedExit")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("counts a response with an unknown id and keeps going", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const before = yield* counter(Metrics.unknownResponses)
      yield* guest.send(Frame.encodeFrame(0x20100d01, 4242, new TextEncoder().encode('{"Result":0}')))
      const call = yield* Effect.forkChild(gc.deleteContainerState("x"))
      yield* guest.reply(yield* guest.next)
      yield* Fiber.join(call)
      expect((yield* counter(Metrics.unknownResponses)) - before).toBe(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("strict: an unknown id kills the bridge like the Go host", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire(), { strict: true })
      const call = yield* Effect.forkChild(Effect.flip(gc.deleteContainerState("x")))
      yield* guest.next
      yield* guest.send(Frame.encodeFrame(0x20100d01, 4242, new TextEncoder().encode('{"Result":0}')))
      const error = yield* Fiber.join(call)
      expect(error).toBeInstanceOf(BridgeClosed)
      const closed = error as BridgeClosed
      expect(closed.reason).toBe("Protocol")
      expect(closed.cause).toBeInstanceOf(ProtocolError)
      expect((closed.cause as ProtocolError).reason).toBe("UnmatchedId")
      // Later calls fail at once with the same error.
      expect(yield* Effect.flip(gc.dumpStacks)).toBe(closed)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("counts a notification for an unknown container; strict makes it fatal", () =>
    Effect.gen(function* () {
      const before = yield* counter(Metrics.unknownNotifications)
      const relaxed = yield* connected(yield* wire())
      yield* relaxed.guest.notify("nobody")
      const call = yield* Effect.forkChild(relaxed.gc.deleteContainerState("x"))
      yield* relaxed.guest.reply(yield* relaxed.guest.next)
      yield* Fiber.join(call)
      expect((yield* counter(Metrics.unknownNotifications)) - before).toBe(1)

      const strict = yield* connected(yield* wire(), { strict: true })
      yield* strict.guest.notify("nobody")
      const closed = yield* strict.gc.closed
      expect(closed.reason).toBe("Protocol")
      expect((closed.cause as ProtocolError).reason).toBe("UnknownContainer")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("an oversize frame kills the bridge; every waiter gets BridgeClosed with the ProtocolError", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const deaths = yield* deathsOf("Protocol")
      const waiters = yield* Effect.forkChild(
        Effect.all([Effect.flip(gc.dumpStacks), Effect.flip(gc.deleteContainerState("y"))], {
          concurrency: "unbounded"
        })
      )
      yield* take(guest, 2)
      const header = new Uint8Array(16)
      const view = new DataView(header.buffer)
      view.setUint32(0, 0x20100c01, true)
      view.setUint32(4, 0x10001, true)
      yield* guest.send(header)
      const [a, b] = yield* Fiber.join(waiters)
      expect(a).toBeInstanceOf(BridgeClosed)
      expect(b).toBe(a)
      const closed = a as BridgeClosed
      expect(closed.reason).toBe("Protocol")
      expect((closed.cause as ProtocolError).reason).toBe("Oversize")
      expect((yield* deathsOf("Protocol")) - deaths).toBe(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("an unknown message type kills the bridge with UnknownType", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const call = yield* Effect.forkChild(Effect.flip(gc.dumpStacks))
      yield* guest.next
      // A request from the guest: no guest sends those.
      yield* guest.send(Frame.encodeFrame(0x10100101, 7, new TextEncoder().encode("{}")))
      const error = (yield* Fiber.join(call)) as BridgeClosed
      expect(error.reason).toBe("Protocol")
      expect((error.cause as ProtocolError).reason).toBe("UnknownType")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a malformed response fails only its call; strict kills the bridge", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const call = yield* Effect.forkChild(Effect.flip(gc.deleteContainerState("x")))
      const request = yield* guest.next
      yield* guest.send(Frame.encodeFrame(0x20100d01, request.id, new TextEncoder().encode("{not json")))
      const error = yield* Fiber.join(call)
      expect(error).toBeInstanceOf(ProtocolError)
      expect((error as ProtocolError).reason).toBe("InvalidJson")
      // The bridge still works.
      const next = yield* Effect.forkChild(gc.deleteContainerState("y"))
      yield* guest.reply(yield* guest.next)
      yield* Fiber.join(next)

      const strict = yield* connected(yield* wire(), { strict: true })
      const strictCall = yield* Effect.forkChild(Effect.flip(strict.gc.deleteContainerState("x")))
      const strictRequest = yield* strict.guest.next
      yield* strict.guest.send(
        Frame.encodeFrame(0x20100d01, strictRequest.id, new TextEncoder().encode('{"Result":"x"}'))
      )
      const strictError = yield* Fiber.join(strictCall)
      expect(strictError).toBeInstanceOf(ProtocolError)
      expect((strictError as ProtocolError).reason).toBe("InvalidBody")
      const closed = yield* strict.gc.closed
      expect(closed.reason).toBe("Protocol")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a request that cannot be encoded fails only that call", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      // A cyclic document has no JSON form.
      const cyclic: Record<string, unknown> = {}
      cyclic["self"] = cyclic
      const error = yield* Effect.flip(gc.modify({ Settings: cyclic }))
      expect(error).toBeInstanceOf(ProtocolError)
      expect((error as ProtocolError).reason).toBe("EncodeFailed")
      const ok = yield* Effect.forkChild(gc.deleteContainerState("y"))
      const request = yield* guest.next
      expect(request.name).toBe("DeleteContainerState")
      yield* guest.reply(request)
      yield* Fiber.join(ok)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("an interrupted caller leaves the bridge intact; its late response is matched and dropped", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire(), { strict: true })
      const late = yield* counter(Metrics.lateResponses)
      const call = yield* Effect.forkChild(gc.deleteContainerState("slow"))
      const request = yield* guest.next
      yield* Fiber.interrupt(call)
      yield* guest.reply(request)
      // Even strict: the late answer is not an unknown id.
      const next = yield* Effect.forkChild(gc.deleteContainerState("fast"))
      yield* guest.reply(yield* guest.next)
      yield* Fiber.join(next)
      expect((yield* counter(Metrics.lateResponses)) - late).toBe(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("the guest hanging up fails every pending and later call with BridgeClosed (EndOfStream)", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const container = yield* gc.openContainer("c")
      const pending = yield* Effect.forkChild(
        Effect.all([Effect.flip(gc.dumpStacks), Effect.flip(container.start)], { concurrency: "unbounded" })
      )
      yield* take(guest, 2)
      yield* guest.close
      const [a, b] = yield* Fiber.join(pending)
      expect((a as BridgeClosed).reason).toBe("EndOfStream")
      expect(b).toBe(a)
      const exit = yield* container.wait
      expect(exit._tag).toBe("ConnectionLost")
      expect(yield* Effect.flip(gc.deleteContainerState("z"))).toBe(a)
      expect(yield* gc.closed).toBe(a)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a guest failure response decodes into a GuestError even for procs with extra fields", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const call = yield* Effect.forkChild(Effect.flip(gc.dumpStacks))
      const request = yield* guest.next
      yield* guest.reply(
        request as Received & { name: "DumpStacks" },
        new Envelope.ResponseBase({
          Result: HResult.HResult.Fail,
          ErrorMessage: "not supported against the UVM"
        })
      )
      const error = (yield* Fiber.join(call)) as GuestError
      expect(error.hresult).toBe(0x80004005)
      expect(error.message).toBe("not supported against the UVM")
      expect(error.errorRecords).toEqual([])
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
