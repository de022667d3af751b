import { it } from "@effect/vitest"
import { Effect, Fiber, Option, Stream } from "effect"
import { expect } from "vitest"
import { HybridAddress, MemoryAddress, Transport, UnixAddress, VsockAddress } from "../src/index.js"
import { conformance, readAll, transportFailure } from "./helpers.js"

let counter = 0
const fresh = () => {
  const address = new MemoryAddress({ name: `vm-${++counter}` })
  return { listen: address, connect: address }
}

conformance("Transport.layerMemory", Transport.layerMemory, fresh, "memory")
conformance("Transport.layerNode memory://", Transport.layerNode, fresh, "memory")

it.effect("each layer instance is its own network; sharing the layer shares it", () =>
  Effect.gen(function* () {
    const address = new MemoryAddress({ name: "shared" })
    const host = yield* Effect.provide(
      Effect.flatMap(Transport, (t) => t.listen(address, 1)),
      Transport.layerMemory
    )
    // A second build of the layer is another network: nobody listens there.
    const elsewhere = yield* transportFailure(
      Effect.provide(
        Effect.flatMap(Transport, (t) => t.connect(address, 1)),
        Transport.layerMemory
      )
    )
    expect(elsewhere.code).toBe("ECONNREFUSED")
    void host
  })
)

/** A listener on `name` port `port` and one connection to it: the dialling end and the accepted end. */
const connectedPair = (name: string, port: number) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const address = new MemoryAddress({ name })
    const listener = yield* transport.listen(address, port)
    const dialled = yield* transport.connect(address, port)
    return [dialled, yield* listener.accept()] as const
  })

it.effect("host and guest share one network through one provided layer", () =>
  Effect.gen(function* () {
    const [guest, host] = yield* connectedPair("uvm", 0x40000000)
    yield* guest.write(new Uint8Array([1, 2, 3]))
    yield* guest.endWrite
    expect([...(yield* readAll(host))]).toEqual([1, 2, 3])
  }).pipe(Effect.provide(Transport.layerMemory))
)

it.effect("the memory layer refuses other families with a typed error", () =>
  Effect.gen(function* () {
    const transport = yield* Transport
    for (const address of [
      new VsockAddress({ cid: 3 }),
      new UnixAddress({ path: "/tmp/x" }),
      new HybridAddress({ path: "/tmp/y" })
    ]) {
      const listen = yield* transportFailure(transport.listen(address, 1))
      expect(listen.reason).toBe("Listen")
      expect(listen.code).toBe("EAFNOSUPPORT")
      const connect = yield* transportFailure(transport.connect(address, 1))
      expect(connect.reason).toBe("Connect")
    }
  }).pipe(Effect.provide(Transport.layerMemory))
)

it.effect("a full accept queue refuses further connects", () =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const address = new MemoryAddress({ name: "busy" })
    yield* transport.listen(address, 7, { backlog: 2 })
    yield* transport.connect(address, 7)
    yield* transport.connect(address, 7)
    const third = yield* transportFailure(transport.connect(address, 7))
    expect(third.code).toBe("ECONNREFUSED")
  }).pipe(Effect.provide(Transport.layerMemory))
)

it.live(
  "a reader that closes as its bytes arrive leaves the writer a clean end, as a kernel socket does",
  () =>
    Effect.gen(function* () {
      const [reader, writer] = yield* connectedPair("read-then-close", 9)
      // Waiting when the bytes come, the consumer closes inside the step that handed them over: it read them all.
      const reading = yield* Effect.forkChild(
        Effect.flatMap(Stream.runHead(reader.stream), (head) => Effect.as(reader.close, head))
      )
      yield* Effect.sleep("10 millis")
      yield* writer.write(new Uint8Array([7, 8, 9]))
      expect([...Option.getOrThrow(yield* Fiber.join(reading))]).toEqual([7, 8, 9])
      expect((yield* readAll(writer)).length).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
)

it.live("a reader that closes with bytes unread fails the writer's waiting write with EPIPE", () =>
  Effect.gen(function* () {
    const [reader, writer] = yield* connectedPair("close-unread", 9)
    // More than the pipe holds: the writer waits for a reader that never reads.
    const writing = yield* Effect.forkChild(writer.write(new Uint8Array(1024 * 1024)))
    yield* Effect.sleep("20 millis")
    yield* reader.close
    const failure = yield* transportFailure(Fiber.join(writing))
    expect(failure.code).toBe("EPIPE")
  }).pipe(Effect.provide(Transport.layerMemory))
)
