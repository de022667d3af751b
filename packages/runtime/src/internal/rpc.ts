/** What every operation shares: a `gcs.<Proc>` client span, the request base (`otsc` when traced), the call. */
import { Codec, Envelope, Guid } from "@gcs-bridge/protocol"
import type { MessageType, Rpc } from "@gcs-bridge/protocol"
import { Context, Effect, Option, Tracer } from "effect"
import type { Duration } from "effect"
import type { CallError } from "../Errors.js"
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

/** The W3C `traceparent` of a span, or `undefined` when its ids are not valid W3C ids (the guest rejects those). */
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

/** The body of a call that carries only the request base. */
export const request = (fields: BaseFields) => Codec.unchecked(Envelope.RequestBase, fields)

/**
 * Sends a call in its `gcs.<proc>` client span, then runs `onSent` there. As in Go, `otsc` goes out only when the
 * caller is in a span; a span nobody could see (no parent, native tracer) is skipped: it costs more than the call.
 */
export const send = <N extends MessageType.ProcName, A, E>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  build: (base: BaseFields) => Rpc.RpcRequest<N>,
  onSent: (call: Call<N>, span: Tracer.Span | undefined) => Effect.Effect<A, E>,
  attributes: Attributes = {}
): Effect.Effect<A, E | CallError> => {
  const run = (header: string | undefined, span: Tracer.Span | undefined) =>
    Effect.flatMap(bridge.send(proc, containerId, build(base(containerId, header))), (sent) => {
      span?.attribute("gcs.message_id", sent.id)
      return onSent(sent, span)
    })
  // Both read from the context at once: per call, two effects fewer than serviceOption + service.
  return Effect.contextWith((context: Context.Context<never>) => {
    const parent = Context.getOption(context, Tracer.ParentSpan)
    return Option.isNone(parent) && Context.get(context, Tracer.Tracer) === Tracer.nativeTracer
      ? run(undefined, undefined)
      : Effect.withSpan(
          Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) =>
            run(Option.isSome(parent) ? traceparent(span) : undefined, span)
          ),
          `gcs.${proc}`,
          // A stack trace per span costs more than the rest of the call.
          {
            kind: "client",
            captureStackTrace: false,
            attributes: { "gcs.container_id": containerId, ...attributes }
          }
        )
  })
}

/** Sends a call inside its span and waits for the answer (abandoning it if interrupted). */
export const call = <N extends MessageType.ProcName>(
  bridge: Bridge,
  proc: N,
  containerId: string,
  build: (base: BaseFields) => Rpc.RpcRequest<N>,
  attributes: Attributes = {}
): Effect.Effect<Rpc.RpcResponse<N>, CallError> =>
  send(bridge, proc, containerId, build, (sent) => bridge.await(sent), attributes)

/** Treats the guest's "no such target" as `gone`: silently once its exit was seen, else with a warning (as Go). */
export const whenGone =
  <G>(
    isGone: (u: unknown) => boolean,
    exited: () => boolean,
    gone: G,
    what: string,
    annotations: Attributes
  ) =>
  <A, E extends { readonly message: string }>(self: Effect.Effect<A, E>): Effect.Effect<A | G, E> =>
    Effect.catchIf(self, isGone, (error: E) => {
      if (exited()) return Effect.succeed(gone)
      const log = Effect.logWarning(`ignoring missing ${what}`)
      return Effect.as(Effect.annotateLogs(log, { ...annotations, error: error.message }), gone)
    })

/** A finalizer's guest call: bounded by `timeout`, made interruptible so the timeout can fire, logged on failure. */
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
