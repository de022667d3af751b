/**
 * Tracing a user can export: OpenTelemetry's SDK wired once through
 * `@effect/opentelemetry`, an in-memory exporter, and the spans and wire
 * trace context of calls made inside the user's own span.
 */
import { describe, expect, it } from "@effect/vitest"
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import { Guid, Process } from "@gcs-bridge/protocol"
import { Transport } from "@gcs-bridge/transport"
import { SpanKind } from "@opentelemetry/api"
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Fiber, Layer } from "effect"
import type { Received } from "./FakeGuest.js"
import { connected, wire } from "./harness.js"

/** The wiring a user writes once (as in the README): the SDK's provider as the Effect tracer. */
const tracing = (exporter: InMemorySpanExporter) =>
  OtelTracer.layer.pipe(
    Layer.provide(
      Layer.succeed(OtelTracer.OtelTracerProvider)(
        new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
      )
    )
  )

describe("OpenTelemetry export", () => {
  it.effect("a gcs.<Proc> span per RPC under the user's span, its trace id in the request's otsc", () => {
    const exporter = new InMemorySpanExporter()
    return Effect.gen(function* () {
      const { gc, guest } = yield* connected(yield* wire())
      const user = yield* Effect.forkChild(
        Effect.gen(function* () {
          const process = yield* gc.exec({ CommandArgs: ["true"] })
          expect(yield* process.wait).toBe(0)
          yield* gc.deleteContainerState("c1")
        }).pipe(Effect.scoped, Effect.withSpan("user-operation"))
      )
      const exec = (yield* guest.next) as Received & { name: "ExecuteProcess" }
      yield* guest.reply(exec, new Process.ContainerExecuteProcessResponse({ ProcessId: 42 }))
      const wait = (yield* guest.next) as Received & { name: "WaitForProcess" }
      yield* guest.reply(wait, new Process.ContainerWaitForProcessResponse({ ExitCode: 0 }))
      const remove = yield* guest.next
      yield* guest.reply(remove)
      yield* Fiber.join(user)

      const spans = exporter.getFinishedSpans()
      const parent = spans.find((s) => s.name === "user-operation")
      if (parent === undefined) throw new Error("the user's span was not exported")
      const traceId = parent.spanContext().traceId
      for (const [name, request, attributes] of [
        ["gcs.ExecuteProcess", exec, { "gcs.container_id": Guid.NullGuid, "gcs.pid": 42 }],
        ["gcs.WaitForProcess", wait, { "gcs.container_id": Guid.NullGuid, "gcs.pid": 42 }],
        ["gcs.DeleteContainerState", remove, { "gcs.container_id": "c1" }]
      ] as const) {
        const span = spans.find((s) => s.name === name)
        if (span === undefined) throw new Error(`${name} was not exported`)
        expect(span.kind).toBe(SpanKind.CLIENT)
        expect(span.spanContext().traceId).toBe(traceId)
        expect(span.parentSpanContext?.spanId).toBe(parent.spanContext().spanId)
        expect(span.attributes).toMatchObject({ ...attributes, "gcs.message_id": request.id })
        // The guest received the RPC span's context: same trace, the RPC span as its parent.
        expect(request.body.otsc).toEqual({ traceparent: `00-${traceId}-${span.spanContext().spanId}-01` })
      }
    }).pipe(Effect.provide(tracing(exporter)), Effect.provide(Transport.layerMemory))
  })
})
