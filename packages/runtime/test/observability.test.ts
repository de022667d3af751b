/**
 * Spans, trace-context propagation, log scrubbing, the health policy and the
 * negotiation's failure modes.
 */
import { HResult, Negotiate, Process } from "@gcs-bridge/protocol"
import { describe, expect, it } from "@effect/vitest"
import { Transport } from "@gcs-bridge/transport"
import type { Tracer as TracerT } from "effect"
import { Effect, Exit, Fiber, Logger, Metric, Option, References, Scope, Stream, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { scrubRequestPayload } from "../src/internal/scrub.js"
import { traceparent } from "../src/internal/rpc.js"
import { BridgeClosed, GuestConnection, Metrics, ProtocolError, TransportError } from "../src/index.js"
import type { Received } from "./FakeGuest.js"
import { connected, connectPair, wire } from "./harness.js"

/** A tracer that records every span the default tracer makes. */
const recording = Effect.map(Effect.service(Tracer.Tracer), (base) => {
  const spans: Array<TracerT.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = base.span(options)
      spans.push(span)
      return span
    },
    ...(base.context ? { context: base.context } : {})
  })
  return { spans, tracer }
})

describe("tracing", () => {
  it.effect("every RPC is a client span gcs.<Proc>; a traced caller's context lands in otsc", () =>
    Effect.gen(function* () {
      const { spans, tracer } = yield* recording
      const { gc, guest } = yield* connected(yield* wire())
      const call = yield* Effect.forkChild(
        Effect.flatMap(Effect.currentSpan, (parent) => Effect.as(gc.deleteContainerState("c1"), parent)).pipe(
          Effect.withSpan("caller"),
          Effect.withTracer(tracer)
        )
      )
      const request = yield* guest.next
      yield* guest.reply(request)
      const parent = yield* Fiber.join(call)
      const rpc = spans.find((s) => s.name === "gcs.DeleteContainerState")
      if (rpc === undefined) throw new Error("no RPC span")
      expect(rpc.kind).toBe("client")
      expect(Option.map(rpc.parent, (p) => p.spanId)).toEqual(Option.some(parent.spanId))
      expect(rpc.attributes.get("gcs.container_id")).toBe("c1")
      expect(rpc.attributes.get("gcs.message_id")).toBe(request.id)
      expect(request.body.otsc).toEqual({ traceparent: `00-${parent.traceId}-${rpc.spanId}-01` })
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("an untraced caller sends no otsc (the Go host without a span)", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const call = yield* Effect.forkChild(gc.deleteContainerState("c1"))
      const request = yield* guest.next
      expect(request.body.otsc).toEqual({})
      yield* guest.reply(request)
      yield* Fiber.join(call)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it("traceparent refuses ids that are not W3C ids", () => {
    const span = (traceId: string, spanId: string, sampled = true) =>
      ({ traceId, spanId, sampled }) as TracerT.AnySpan
    expect(traceparent(span("a".repeat(32), "b".repeat(16)))).toBe(
      `00-${"a".repeat(32)}-${"b".repeat(16)}-01`
    )
    expect(traceparent(span("A".repeat(32), "b".repeat(16), false))).toBe(
      `00-${"a".repeat(32)}-${"b".repeat(16)}-00`
    )
    expect(traceparent(span("0".repeat(32), "b".repeat(16)))).toBeUndefined()
    expect(traceparent(span("a".repeat(31), "b".repeat(16)))).toBeUndefined()
    expect(traceparent(span("a".repeat(32), "xyz"))).toBeUndefined()
  })
})

describe("log scrubbing", () => {
  it("removes OCI env and annotations and process Environment, also inside JSON-in-string fields", () => {
    const create = JSON.stringify({
      ContainerId: "c1",
      ContainerConfig: JSON.stringify({
        OciSpecification: {
          process: { env: ["TOKEN=hunter2"], args: ["sh"] },
          annotations: { key: "secret" }
        }
      })
    })
    const scrubbed = scrubRequestPayload("Create", create)
    expect(scrubbed).not.toContain("hunter2")
    expect(scrubbed).not.toContain("secret")
    expect(scrubbed).toContain("<scrubbed>")
    expect(scrubbed).toContain('\\"args\\":[\\"sh\\"]')
    const exec = JSON.stringify({
      Settings: {
        ProcessParameters: JSON.stringify({
          Environment: { TOKEN: "hunter2" },
          OciProcess: { env: ["A=hunter2"] }
        })
      }
    })
    expect(scrubRequestPayload("ExecuteProcess", exec)).not.toContain("hunter2")
    expect(scrubRequestPayload("DumpStacks", '{"x":1}')).toBe('{"x":1}')
    expect(scrubRequestPayload("Create", "{oops")).toBe("<unparsable>")
  })

  it.effect("trace-level frame logs carry scrubbed payloads", () =>
    Effect.gen(function* () {
      const lines: Array<{ readonly message: string; readonly payload: string }> = []
      const capture = Logger.make(({ fiber, message }) => {
        const payload = fiber.getRef(References.CurrentLogAnnotations)["payload"]
        lines.push({
          message: Array.isArray(message) ? message.join(" ") : String(message),
          payload: String(payload ?? "")
        })
      })
      yield* Effect.gen(function* () {
        const { gc, guest } = yield* connected(yield* wire())
        const container = yield* gc.openContainer("c1")
        const exec = yield* Effect.forkChild(
          Effect.scoped(
            container.exec(
              new Process.ProcessParameters({
                OciProcess: { env: ["TOKEN=hunter2"] },
                Environment: { K: "hunter2" }
              })
            )
          )
        )
        const request = yield* guest.next
        yield* guest.reply(
          request as Received & { name: "ExecuteProcess" },
          new Process.ContainerExecuteProcessResponse({ ProcessId: 9 })
        )
        yield* guest.close
        yield* Fiber.await(exec)
      }).pipe(
        Effect.provideService(References.MinimumLogLevel, "Trace"),
        Effect.provide(Logger.layer([capture]))
      )
      const sends = lines.filter((l) => l.message.includes("bridge send"))
      expect(sends.length).toBeGreaterThanOrEqual(2)
      for (const line of sends) expect(line.payload).not.toContain("hunter2")
      expect(sends.some((l) => l.payload.includes("<scrubbed>"))).toBe(true)
      expect(lines.some((l) => l.message.includes("bridge receive"))).toBe(true)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})

describe("health policy", () => {
  it.effect("a stalled guest is declared Unresponsive; a long WaitForProcess alone is not a stall", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire(), { stallTimeout: "10 seconds" })
      const exec = yield* Effect.forkChild(gc.exec({ CommandArgs: ["sleep", "1000"] }))
      const request = yield* guest.next
      yield* guest.reply(
        request as Received & { name: "ExecuteProcess" },
        new Process.ContainerExecuteProcessResponse({ ProcessId: 7 })
      )
      const process = yield* Fiber.join(exec)
      expect((yield* guest.next).name).toBe("WaitForProcess")
      const closed = yield* Effect.forkChild(gc.closed)
      yield* TestClock.adjust("1 minute")
      expect(closed.pollUnsafe()).toBeUndefined()
      // Now a call the guest never answers.
      const stuck = yield* Effect.forkChild(Effect.flip(gc.dumpStacks))
      yield* guest.next
      yield* TestClock.adjust("30 seconds")
      const error = yield* Fiber.join(stuck)
      expect(error).toBeInstanceOf(BridgeClosed)
      expect((error as BridgeClosed).reason).toBe("Unresponsive")
      expect(yield* Effect.flip(process.wait)).toBe(error)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("without a policy a slow call never closes the bridge; deadlines are the caller's", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const slow = yield* Effect.forkChild(Effect.result(Effect.timeout(gc.dumpStacks, "5 minutes")))
      const request = yield* guest.next
      yield* TestClock.adjust("6 minutes")
      const result = yield* Fiber.join(slow)
      expect(result._tag).toBe("Failure")
      // The bridge is fine, and the late answer is dropped.
      yield* guest.reply(request)
      const next = yield* Effect.forkChild(gc.deleteContainerState("x"))
      yield* guest.reply(yield* guest.next)
      yield* Fiber.join(next)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})

describe("stdio deadline", () => {
  it.effect("stdioAcceptTimeout fails a stream the guest never connects with AcceptTimeout", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire(), { stdioAcceptTimeout: "3 seconds" })
      const exec = yield* Effect.forkChild(gc.exec({ CommandArgs: ["true"], CreateStdOutPipe: true }))
      const request = yield* guest.next
      yield* guest.reply(
        request as Received & { name: "ExecuteProcess" },
        new Process.ContainerExecuteProcessResponse({ ProcessId: 3 })
      )
      const process = yield* Fiber.join(exec)
      const reader = yield* Effect.forkChild(Effect.flip(Stream.runDrain(process.stdout)))
      yield* TestClock.adjust("4 seconds")
      const error = yield* Fiber.join(reader)
      expect(error).toBeInstanceOf(TransportError)
      expect(error.reason).toBe("AcceptTimeout")
      // Hang up, so that closing the process's scope does not wait for a kill the guest never answers.
      yield* guest.close
      yield* gc.closed
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})

describe("metrics", () => {
  it.effect("records RPC latency per procedure and calls in flight", () =>
    Effect.gen(function* () {
      const latency = Metric.withAttributes(Metrics.rpcLatency, { proc: "DeleteContainerState" })
      const before = (yield* Metric.value(latency)).count
      const { gc, guest } = yield* connected(yield* wire())
      const call = yield* Effect.forkChild(gc.deleteContainerState("c"))
      const request = yield* guest.next
      expect((yield* Metric.value(Metrics.rpcInFlight)).value).toBeGreaterThanOrEqual(1)
      yield* guest.reply(request)
      yield* Fiber.join(call)
      expect((yield* Metric.value(latency)).count).toBe(before + 1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "counts the calls in flight of every live connection of a registry, and none of a closed one",
    () =>
      Effect.gen(function* () {
        const inFlight = Effect.map(Metric.value(Metrics.rpcInFlight), (state) => state.value)
        const first = yield* connected(yield* wire())
        const secondScope = yield* Scope.make()
        const second = yield* Scope.provide(connected(yield* wire()), secondScope)
        expect(yield* inFlight).toBe(0)
        const a = yield* Effect.forkChild(first.gc.deleteContainerState("a"))
        const b = yield* Effect.forkChild(Effect.exit(second.gc.deleteContainerState("b")))
        const request = yield* first.guest.next
        yield* second.guest.next
        expect(yield* inFlight).toBe(2)
        yield* first.guest.reply(request)
        yield* Fiber.join(a)
        expect(yield* inFlight).toBe(1)
        // Closing the second connection fails its call: nothing of it is counted any more.
        yield* Scope.close(secondScope, Exit.void)
        expect(Exit.isFailure(yield* Fiber.join(b))).toBe(true)
        expect(yield* inFlight).toBe(0)
      }).pipe(
        Effect.provide(Transport.layerMemory),
        // A registry of its own: other tests' connections are not in it.
        Effect.provideService(Metric.MetricRegistry, new Map())
      )
  )
})

describe("negotiation", () => {
  const refused = (response: Negotiate.NegotiateProtocolResponse | "fail") =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { guest, host } = yield* connectPair(wired)
      const fiber = yield* Effect.forkChild(
        Effect.flip(
          GuestConnection.fromConnection(host, { address: wired.address }).pipe(
            Effect.provideService(Transport, wired.hostTransport)
          )
        )
      )
      const request = yield* guest.next
      if (response === "fail") yield* guest.fail(request, HResult.HResult.UnsupportedProtocolVersion)
      else yield* guest.reply(request as Received & { name: "NegotiateProtocol" }, response)
      const error = yield* Fiber.join(fiber)
      // The connection is closed on failure.
      expect(wired.counts.connections).toBe(0)
      return error
    }).pipe(Effect.provide(Transport.layerMemory))

  it.effect("a version other than 4 is refused", () =>
    Effect.gen(function* () {
      const error = yield* refused(
        new Negotiate.NegotiateProtocolResponse({
          Version: 3,
          Capabilities: new Negotiate.GcsCapabilities({})
        })
      )
      expect(error).toBeInstanceOf(ProtocolError)
      expect((error as ProtocolError).reason).toBe("NegotiationRefused")
      expect(error.message).toContain("unexpected version 3")
    })
  )

  it.effect("a guest that refuses version 4 gives NegotiationRefused", () =>
    Effect.gen(function* () {
      const error = yield* refused("fail")
      expect((error as ProtocolError).reason).toBe("NegotiationRefused")
      expect(error.message).toContain("0xc037010c")
    })
  )

  it.effect("a guest that never answers the negotiation is Unresponsive after connectTimeout", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { guest, host } = yield* connectPair(wired)
      const fiber = yield* Effect.forkChild(
        Effect.flip(
          GuestConnection.fromConnection(host, { address: wired.address, connectTimeout: "10 seconds" }).pipe(
            Effect.provideService(Transport, wired.hostTransport)
          )
        )
      )
      yield* guest.next
      yield* TestClock.adjust("11 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(BridgeClosed)
      expect((error as BridgeClosed).reason).toBe("Unresponsive")
      expect(wired.counts.connections).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
