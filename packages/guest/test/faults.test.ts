import { describe, expect, it } from "@effect/vitest"
import { Codec, Envelope, MessageType, Negotiate, Process } from "@gcs-bridge/protocol"
import { Transport } from "@gcs-bridge/transport"
import { Deferred, Duration, Effect, Fiber, Option, Queue, Result } from "effect"
import { TestClock } from "effect/testing"
import { Fault } from "../src/index.js"
import { accept, countTimers, Null, setup, untilTimerArmed, writeText } from "./host.js"

const uvm = new Envelope.RequestBase({ ContainerId: Null })

describe("fault injection", () => {
  it.effect("drop-after closes the bridge after N messages; with once the guest then stops", () =>
    Effect.gen(function* () {
      const { host, guest } = yield* setup({ faults: [Fault.Fault.DropAfter({ messages: 1 })] })
      expect((yield* host.negotiate()).result).toBe(0)
      expect(yield* Deferred.await(host.ended)).toBeUndefined()
      expect(yield* Queue.size(host.frames)).toBe(1)
      yield* Fiber.join(guest)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("drop-after=0 drops before writing anything", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ faults: [Fault.Fault.DropAfter({ messages: 0 })] })
      expect(yield* Deferred.await(host.ended)).toBeUndefined()
      expect(yield* Queue.size(host.frames)).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("after a drop the guest re-dials like the Linux GCS: un-negotiated again, containers kept", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const { host, listener } = yield* setup({
        once: false,
        faults: [Fault.Fault.DropAfter({ messages: 3 })]
      })
      yield* host.negotiate()
      expect((yield* host.create("kept", { args: ["true"] })).result).toBe(0)
      expect((yield* host.call("Start", new Envelope.RequestBase({ ContainerId: "kept" }))).result).toBe(0)
      expect(yield* Deferred.await(host.ended)).toBeUndefined()
      // The guest sleeps its 100 ms before dialling again.
      yield* untilTimerArmed
      yield* TestClock.adjust(Duration.millis(100))
      const again = yield* accept(transport, host.address, listener)
      expect((yield* again.call("DumpStacks", uvm)).result).toBe(0x80004001)
      yield* again.negotiate()
      expect((yield* again.call("Start", new Envelope.RequestBase({ ContainerId: "kept" }))).result).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "processes and containers outlive a connection; the next host waits for them and gets the notification",
    () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const { host, listener } = yield* setup({ once: false })
        yield* host.negotiate()
        yield* host.create("survivor", { args: ["cat"], env: [`PATH=${process.env["PATH"] ?? "/bin"}`] })
        const init = yield* host.exec("survivor", {}, { stdin: true })
        yield* host.connection.close
        yield* untilTimerArmed
        yield* TestClock.adjust(Duration.millis(100))
        const next = yield* accept(transport, host.address, listener)
        yield* next.negotiate()
        // The first host's stdio connection still feeds the process.
        yield* writeText(Option.getOrThrow(init.stdin), "")
        const wait = yield* next.ok(
          "WaitForProcess",
          new Process.ContainerWaitForProcess({
            ContainerId: "survivor",
            ProcessId: init.pid,
            TimeoutInMs: Process.InfiniteTimeout
          })
        )
        expect(wait.ExitCode).toBe(0)
        expect((yield* next.notification()).ContainerId).toBe("survivor")
      }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("delay holds every response back by the given time", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ faults: [Fault.Fault.Delay({ duration: Duration.seconds(5) })] })
      const negotiate = yield* host.send(
        "NegotiateProtocol",
        new Negotiate.NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 4, MaximumVersion: 4 })
      )
      yield* untilTimerArmed
      yield* TestClock.adjust(Duration.seconds(4))
      // Give an undelayed answer every chance to arrive before checking that none did.
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow
      expect(yield* Queue.size(host.frames)).toBe(0)
      yield* TestClock.adjust(Duration.seconds(1))
      const frame = yield* host.response(negotiate)
      expect(frame.type).toBe(MessageType.responseType(MessageType.Proc.NegotiateProtocol))
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("malformed-after sends a frame whose payload is not JSON, with the right type and id", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ faults: [Fault.Fault.MalformedAfter({ messages: 1 })] })
      yield* host.negotiate()
      const id = yield* host.send("DumpStacks", uvm)
      const frame = yield* host.response(id)
      expect(frame.type).toBe(MessageType.responseType(MessageType.Proc.DumpStacks))
      expect(Result.isFailure(Codec.parsePayload(frame.payload))).toBe(true)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("oversize-after sends a header declaring far more than a host accepts", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ faults: [Fault.Fault.OversizeAfter({ messages: 1 })] })
      yield* host.negotiate()
      yield* host.send("DumpStacks", uvm)
      const error = yield* Deferred.await(host.ended)
      expect(error?.reason).toBe("Oversize")
      expect(error?.message).toContain(String(Fault.OversizeDeclaredSize))
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("unknown-id-after answers with an id no request had", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ faults: [Fault.Fault.UnknownIdAfter({ messages: 1 })] })
      yield* host.negotiate()
      const id = yield* host.send("DumpStacks", uvm)
      const frame = yield* host.response(id + 0x100000000)
      expect(frame.type).toBe(MessageType.responseType(MessageType.Proc.DumpStacks))
      // Only the first response after the threshold is affected.
      expect((yield* host.call("DumpStacks", uvm)).result).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("flood sends notifications for containers that never existed right after negotiation", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ faults: [Fault.Fault.Flood({ notifications: 3 })] })
      yield* host.negotiate()
      const ids: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const frame = yield* Queue.take(host.notifications)
        expect(frame.id).toBe(0)
        ids.push(Result.getOrThrow(Codec.decodeNotification(frame.payload)).ContainerId)
      }
      expect(ids).toEqual(["gcs-bridge-flood-0", "gcs-bridge-flood-1", "gcs-bridge-flood-2"])
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("silent-after writes nothing more while the connection stays open", () =>
    Effect.gen(function* () {
      // The drop after the second message proves the second one was produced and swallowed.
      const { host } = yield* setup({
        faults: [Fault.Fault.SilentAfter({ messages: 1 }), Fault.Fault.DropAfter({ messages: 2 })]
      })
      yield* host.negotiate()
      yield* host.send("DumpStacks", uvm)
      expect(yield* Deferred.await(host.ended)).toBeUndefined()
      expect(yield* Queue.size(host.frames)).toBe(1)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("faults can be given as spec text", () =>
    Effect.gen(function* () {
      const faults = yield* Fault.parse("flood=1, drop-after=2")
      const { host } = yield* setup({ faults })
      yield* host.negotiate()
      expect((yield* Queue.take(host.notifications)).id).toBe(0)
      expect(yield* Deferred.await(host.ended)).toBeUndefined()
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )
})
