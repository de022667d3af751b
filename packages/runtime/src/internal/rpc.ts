/**
 * The shape every public operation shares: a `gcs.<Proc>` client span, the request base (container id, null
 * activity id, W3C trace context in `otsc` when the caller is traced), and the call on the bridge.
 */
import { Guid } from "@gcs-bridge/protocol"
import type { Envelope, MessageType, Rpc } from "@gcs-bridge/protocol"
import { Effect, Option, Tracer } from "effect"
import type { Duration } from "effect"
import type { CallError } from "../CallError.js"
import type { Bridge, Call } from "./bridge.js"

/** The request-base fields of a body, ready to spread into its constructor. */
export interface BaseFields {
  readonly ContainerId: string
  readonly ActivityId: typeof Guid.NullGuid
  readonly otsc: Envelope.OpenTelemetryCarrier
}

/** Span attributes of a call besides `gcs.container_id` (`gcs.pid`, …). */
export type Attributes = Readonly<Record<string, string | number | boolean>>

const hex32 = /^[0-9a-f]{32}$/
const hex16 = /^[0-9a-f]{16}$/
const zeros = /^0+$/

/**
 * The W3C `traceparent` of a span (`00-<trace id>-<span id>-<flags>`), or `undefined` when its ids are not
 * valid W3C ids (all zeros, or not hex): a guest must never be handed a header it would reject.
 */
export const traceparent = (span: Tracer.AnySpan): string | undefined => {
  const traceId = span.traceId.toLowerCase()
  const spanId = span.spanId.toLowerCase()
  if (!hex32.test(traceId) || !hex16.test(spanId) || zeros.test(traceId) || zeros.test(spanId))
    return undefined
  return `00-${traceId}-${spanId}-${span.sampled === false ? "00" : "01"}`
}

/** The request base of an untraced call (`header` undefined) or a traced one. */
export const base = (containerId: string, header: string | undefined): BaseFields => ({
  ContainerId: containerId,
  ActivityId: Guid.NullGuid,
  otsc: header === undefined ? {} : { traceparent: header }
})

/**
 * Runs `f` inside the `gcs.<proc>` client span with the request base for `containerId`. Like the Go host, the
 * trace context is propagated only when the caller runs inside a span of its own; the RPC span is then the
 * guest's parent. A span nobody could ever see — no parent, and only Effect's native tracer, which exports
 * nothing — is not made: it would cost more than the rest of the call.
 */
export const traced = <A, E, R>(
  proc: MessageType.ProcName,
  containerId: string,
  attributes: Attributes,
  f: (base: BaseFields, span: Tracer.Span | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(Tracer.ParentSpan), (parent) =>
    Effect.flatMap(Effect.service(Tracer.Tracer), (tracer) =>
      Option.isNone(parent) && tracer === Tracer.nativeTracer
        ? f(base(containerId, undefined), undefined)
        : Effect.withSpan(
            Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) =>
              f(base(containerId, Option.isSome(parent) ? traceparent(span) : undefined), span)
            ),
            `gcs.${proc}`,
            // A stack trace per span costs more than the rest of the call.
            {
              kind: "client",
              captureStackTrace: false,
              attributes: { "gcs.container_id": containerId, ...attributes }
            }
          )
    )
  )

/** Sends a call inside its span, recording its message id; `onSent` decides what to do with it there. */
export const send = <N extends MessageType.ProcName, A, E>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  build: (base: BaseFields) => Rpc.RpcRequest<N>,
  onSent: (call: Call<N>, span: Tracer.Span | undefined) => Effect.Effect<A, E>,
  attributes: Attributes = {}
): Effect.Effect<A, E | CallError> =>
  traced(proc, containerId, attributes, (fields, span) =>
    // Interruptible even in a masked region: only waiting for room in the write queue can block here.
    Effect.flatMap(Effect.interruptible(bridge.send(proc, containerId, build(fields))), (sent) => {
      span?.attribute("gcs.message_id", sent.id)
      return onSent(sent, span)
    })
  )

/** Sends a call inside its span and waits for the answer (abandoning it if interrupted). */
export const call = <N extends MessageType.ProcName>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  build: (base: BaseFields) => Rpc.RpcRequest<N>,
  attributes: Attributes = {}
): Effect.Effect<Rpc.RpcResponse<N>, CallError> =>
  send(bridge, proc, containerId, build, (sent) => bridge.await(sent), attributes)

/**
 * Treats the guest's "no such target" (`isGone`) as `gone`: silently once the target's exit was seen, with a
 * warning otherwise (as the Go host logs it).
 */
export const whenGone =
  <G>(
    isGone: (u: unknown) => boolean,
    exited: () => boolean,
    gone: G,
    what: string,
    annotations: Attributes
  ) =>
  <A, E extends { readonly message: string }>(self: Effect.Effect<A, E>): Effect.Effect<A | G, E> =>
    Effect.catchIf(self, isGone, (error: E) =>
      exited()
        ? Effect.succeed(gone)
        : Effect.as(
            Effect.annotateLogs(Effect.logWarning(`ignoring missing ${what}`), {
              ...annotations,
              error: error.message
            }),
            gone
          )
    )

/**
 * A guest call made by a scope's finalizer, bounded by `timeout` and never failing (logged instead).
 * Finalizers run uninterruptibly: the call is made interruptible, or the timeout could never fire.
 */
export const onClose = (
  effect: Effect.Effect<unknown, unknown>,
  timeout: Duration.Duration,
  message: string,
  annotations: Attributes
): Effect.Effect<void> =>
  effect.pipe(
    Effect.interruptible,
    Effect.timeout(timeout),
    Effect.asVoid,
    Effect.catchCause((cause) => Effect.annotateLogs(Effect.logWarning(message, cause), annotations))
  )
