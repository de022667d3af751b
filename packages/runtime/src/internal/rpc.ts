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

/** The tracer of a program that installed none: its spans go nowhere. */
const builtinTracer = Effect.runSync(Effect.tracer)

const untraced = (containerId: string): BaseFields => ({
  ContainerId: containerId,
  ActivityId: NullGuid,
  otsc: noCarrier
})

/**
 * Runs `f` inside the `gcs.<proc>` client span with the request base for
 * `containerId`. Like the Go host, the trace context is propagated only when
 * the caller runs inside a span of its own; the RPC span is then the guest's
 * parent. A span nobody could ever see — no parent, and only Effect's
 * built-in tracer, which exports nothing — is not made: it would cost more
 * than the rest of the call.
 */
export const traced = <A, E, R>(
  proc: ProcName,
  containerId: string,
  attributes: Attributes,
  f: (base: BaseFields, span: Tracer.Span | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(Tracer.ParentSpan), (parent) => {
    const spanned = Effect.withSpan(
      Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) => {
        const header = Option.isSome(parent) ? traceparent(span) : undefined
        return f(
          header === undefined
            ? untraced(containerId)
            : { ContainerId: containerId, ActivityId: NullGuid, otsc: { traceparent: header } },
          span
        )
      }),
      `gcs.${proc}`,
      // A stack trace per span costs more than the rest of the call.
      {
        kind: "client",
        captureStackTrace: false,
        attributes: { "gcs.container_id": containerId, ...attributes }
      }
    )
    return Option.isSome(parent)
      ? spanned
      : Effect.flatMap(Effect.tracer, (tracer) =>
          tracer === builtinTracer ? f(untraced(containerId), undefined) : spanned
        )
  })

/** Sends a call inside its span and waits for the answer (abandoning it if interrupted). */
export const call = <N extends ProcName>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  attributes: Attributes,
  build: (base: BaseFields) => RpcRequest<N>
): Effect.Effect<RpcResponse<N>, CallError> =>
  traced(proc, containerId, attributes, (base, span) =>
    bridge.call(proc, containerId, build(base), span && ((id) => span.attribute("gcs.message_id", id)))
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
      Effect.sync(() => span?.attribute("gcs.message_id", sent.id))
    )
  )
