/**
 * The shape every public operation shares: a `gcs.<Proc>` client span, the
 * request base (container id, null activity id, W3C trace context in `otsc`
 * when the caller is traced), and the call on the bridge.
 */
import type { OpenTelemetryCarrier, ProcName, RpcRequest, RpcResponse } from "@gcs-bridge/protocol"
import { NullGuid } from "@gcs-bridge/protocol"
import { Effect, Option, Tracer } from "effect"
import type { Bridge, Call, CallError } from "./Bridge.js"
import { traceparent } from "./traceContext.js"

/** The request-base fields of a body, ready to spread into its constructor. */
export interface BaseFields {
  readonly ContainerId: string
  readonly ActivityId: typeof NullGuid
  readonly otsc: OpenTelemetryCarrier
}

const noCarrier: OpenTelemetryCarrier = {}

/** Span attributes of a call (`gcs.container_id`, `gcs.pid`, …). */
export type Attributes = Readonly<Record<string, string | number | boolean>>

/**
 * Runs `f` inside the `gcs.<proc>` span with the request base for
 * `containerId`. Like the Go host, the trace context is propagated only when
 * the caller runs inside a span of its own; the RPC span is then the guest's
 * parent.
 */
export const traced = <A, E, R>(
  proc: ProcName,
  containerId: string,
  attributes: Attributes,
  f: (base: BaseFields, span: Tracer.Span) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(Tracer.ParentSpan), (parent) =>
    Effect.withSpan(
      Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) => {
        const header = Option.isSome(parent) ? traceparent(span) : undefined
        return f(
          {
            ContainerId: containerId,
            ActivityId: NullGuid,
            otsc: header === undefined ? noCarrier : { traceparent: header }
          },
          span
        )
      }),
      `gcs.${proc}`,
      { kind: "client", attributes: { "gcs.container_id": containerId, ...attributes } }
    )
  )

/** Sends a call inside its span and waits for the answer (abandoning it if interrupted). */
export const call = <N extends ProcName>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  attributes: Attributes,
  build: (base: BaseFields) => RpcRequest<N>
): Effect.Effect<RpcResponse<N>, CallError> =>
  traced(proc, containerId, attributes, (base, span) =>
    Effect.flatMap(bridge.send(proc, containerId, build(base)), (sent) => {
      span.attribute("gcs.message_id", sent.id)
      return bridge.await(sent)
    })
  )

/** Sends a call inside its span without waiting for the answer. */
export const send = <N extends ProcName>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  attributes: Attributes,
  build: (base: BaseFields) => RpcRequest<N>
): Effect.Effect<Call<N>, CallError> =>
  traced(proc, containerId, attributes, (base, span) =>
    Effect.tap(bridge.send(proc, containerId, build(base)), (sent) =>
      Effect.sync(() => span.attribute("gcs.message_id", sent.id))
    )
  )
