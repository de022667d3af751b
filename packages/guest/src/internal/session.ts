/**
 * Serving one bridge connection, as the Linux GCS's `ListenAndServe` does:
 * one reader, every request in a fiber of its own, responses and
 * notifications written by one writer in completion order.
 *
 * - Each connection starts un-negotiated: only NegotiateProtocol is served
 *   (v4 accepted iff Min ≤ 4 ≤ Max), everything else gets E_NOTIMPL; after it,
 *   the v4 handlers are served and a second NegotiateProtocol gets E_NOTIMPL.
 *   Negotiation is handled by the reader itself, before the next frame is read.
 * - At most `maxInFlight` requests run at once; beyond that the reader stops
 *   reading, so a host that never collects its responses meets backpressure
 *   rather than a growing queue.
 * - Exit notifications queued by the state are sent through the writer; those
 *   still queued when the connection ends go back to the state for the next one.
 */
import type { ProtocolError, Envelope, Frame } from "@gcs-bridge/protocol"
import { Codec, Container, FrameDecoder, GoJson, Guid, MessageType, Negotiate } from "@gcs-bridge/protocol"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import type { Scope } from "effect"
import { Cause, Deferred, Duration, Effect, FiberSet, Queue, Result, Semaphore, Stream } from "effect"
import type { ResolvedGuestOptions } from "../GuestOptions.js"
import { dispatch, echo, errorResponse, guestTypeLabel, invalidJson, isV4Handler } from "./dispatch.js"
import * as Failure from "./failure.js"
import type { GuestFailure } from "./failure.js"
import type { OutboundFrame } from "./faultPlan.js"
import { FaultPlan } from "./faultPlan.js"
import type { PendingNotification, Uvm } from "./uvm.js"

/** Why a connection stopped being served. */
export type SessionEnd =
  /** The host closed the connection (EOF on a frame boundary). */
  | "PeerClosed"
  /** A `drop-after` fault closed it. */
  | "Dropped"
  /** The host shut down the UVM (ShutdownGraceful/Forced of the null container). */
  | "PowerOff"
  /** The host sent a request the Linux GCS dies of (logged); the bridge was dropped without an answer. */
  | "Crashed"

interface Outbound extends OutboundFrame {
  /** A real exit notification, to hand back to the state if never written. */
  readonly pending?: PendingNotification
}

interface InFlight {
  readonly id: number
  readonly label: string
  readonly since: number
  readonly fiber: number
}

const negotiateType = MessageType.requestType(MessageType.Proc.NegotiateProtocol)
const waitType = MessageType.requestType(MessageType.Proc.WaitForProcess)
/** WaitForProcess requests allowed at once per ordinary request slot. */
const WaitsPerRequestSlot = 64

/** DumpStacks text is kept well under the host's 64 KiB frame limit once JSON-escaped. */
const MaxStacksJsonBytes = 60_000

/** What the Linux GCS reports at negotiation (§7.3, the genuine response). */
const capabilities = new Negotiate.GcsCapabilities({
  SupportedSchemaVersions: [new Negotiate.SchemaVersion({ Major: 2, Minor: 1 })],
  RuntimeOsType: "Linux",
  GuestDefinedCapabilities: new Negotiate.LinuxGuestDefinedCapabilities({
    NamespaceAddRequestSupported: true,
    SignalProcessSupported: true,
    DumpStacksSupported: true,
    DeleteContainerStateSupported: true
  })
})

/** The `ActivityId` of a payload, read leniently like the Linux GCS pre-parses the base. */
const rawActivityId = (payload: Uint8Array): string | undefined => {
  const json = Result.getOrUndefined(Codec.parsePayload(payload))
  if (typeof json !== "object" || json === null) return undefined
  const id = (json as Record<string, unknown>)["ActivityId"]
  return typeof id === "string" ? id : undefined
}

const truncateForWire = (text: string): string => {
  const size = (t: string) => Buffer.byteLength(GoJson.goStringify(t, { escapeHtml: true }))
  let out = text
  while (size(out) > MaxStacksJsonBytes) {
    out = out.slice(0, Math.floor(out.length * 0.9))
  }
  return out === text ? text : out + "\n… (truncated to stay under the 64 KiB frame limit)\n"
}

const handleCounts = (): string => {
  const counts = new Map<string, number>()
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1)
  return [...counts.entries()].map(([name, n]) => `${name} ×${n}`).join(", ")
}

/** A container notification frame. */
const notification = (
  containerId: string,
  activityId: string,
  type: PendingNotification["type"]
): Uint8Array =>
  Codec.encodeNotification(
    new Container.ContainerNotification({
      ContainerId: containerId,
      ActivityId: Guid.isGuid(activityId) ? activityId : Guid.NullGuid,
      Type: type,
      Operation: "None",
      Result: 0
    })
  )

/** Serves `connection` until it ends; closes it on the way out. */
export const serveConnection = Effect.fnUntraced(function* (
  uvm: Uvm,
  connection: Connection,
  options: Pick<ResolvedGuestOptions, "faults" | "maxFrameSize" | "maxInFlight">
): Effect.fn.Return<SessionEnd, ProtocolError.ProtocolError | TransportError, Scope.Scope> {
  const plan = new FaultPlan(options.faults)
  const maxInFlight = Math.max(1, options.maxInFlight)
  const outbound = yield* Queue.bounded<Outbound>(maxInFlight)
  // Registered first, so it runs last: after every fiber below is gone.
  yield* Effect.addFinalizer(() =>
    Queue.clear(outbound).pipe(
      Effect.flatMap((left) =>
        Queue.offerAll(
          uvm.notifications,
          left.flatMap((o) => (o.pending === undefined ? [] : [o.pending]))
        )
      ),
      Effect.andThen(connection.close)
    )
  )
  if (plan.dropImmediately) return "Dropped"

  const ended = yield* Deferred.make<SessionEnd, ProtocolError.ProtocolError | TransportError>()
  const permits = yield* Semaphore.make(maxInFlight)
  const waitPermits = yield* Semaphore.make(maxInFlight * WaitsPerRequestSlot)
  const fibers = yield* FiberSet.make()
  const inFlight = new Map<number, InFlight>()
  const startedAt = Date.now()
  const delay = Duration.isZero(plan.responseDelay) ? Effect.void : Effect.sleep(plan.responseDelay)
  let negotiated = false
  let nextKey = 0

  const send = (message: Outbound) => Queue.offer(outbound, message)

  /** The frame answering `frame`; an encoding bug becomes an E_FAIL reply rather than silence. */
  const responseFrame = (
    frame: Frame.Frame,
    request: Codec.DecodedRequest | undefined,
    body: Envelope.ResponseBase
  ): Uint8Array => {
    try {
      return request === undefined
        ? Codec.encodeResponseTo(frame.type, frame.id, body)
        : Codec.encodeResponse(request.name, frame.id, body)
    } catch (e) {
      const failure = Failure.fail(
        `failed to encode the response: ${e instanceof Error ? e.message : String(e)}`
      )
      return Codec.encodeResponseTo(frame.type, frame.id, errorResponse(failure, undefined))
    }
  }

  const reply = (
    frame: Frame.Frame,
    request: Codec.DecodedRequest | undefined,
    body: Envelope.ResponseBase
  ) =>
    send({
      type: MessageType.responseType(frame.type),
      id: frame.id,
      frame: responseFrame(frame, request, body),
      kind: "response"
    })

  const replyFailure = (frame: Frame.Frame, failure: GuestFailure, activityId: string | undefined) =>
    reply(frame, undefined, errorResponse(failure, activityId))

  const notImplemented = (frame: Frame.Frame) =>
    replyFailure(frame, Failure.notImplemented(guestTypeLabel(frame.type)), rawActivityId(frame.payload))

  const flood = Effect.forEach(
    Array.from({ length: plan.flood }, (_, i) => i),
    (i) =>
      send({
        type: MessageType.NotifyContainer,
        id: 0,
        kind: "flood",
        frame: notification(`gcs-bridge-flood-${i}`, Guid.NullGuid, "UnexpectedExit")
      }),
    { discard: true }
  )

  // Answered on the reader itself, before the next frame is read.
  const negotiate = Effect.fnUntraced(function* (frame: Frame.Frame) {
    // The delay fault holds back every answer, the negotiation's too.
    yield* delay
    const decoded = Codec.decodeRequest(frame)
    if (Result.isFailure(decoded)) {
      return yield* replyFailure(frame, invalidJson(decoded.failure), rawActivityId(frame.payload))
    }
    const request = decoded.success
    if (request.name !== "NegotiateProtocol") return yield* notImplemented(frame)
    const { MinimumVersion, MaximumVersion, ActivityId } = request.body
    if (MaximumVersion < Negotiate.ProtocolVersion || MinimumVersion > Negotiate.ProtocolVersion) {
      return yield* replyFailure(frame, Failure.bare(Failure.Hr.UnsupportedProtocolVersion), ActivityId)
    }
    negotiated = true
    yield* reply(
      frame,
      request,
      new Negotiate.NegotiateProtocolResponse({
        ...echo(ActivityId),
        Version: Negotiate.ProtocolVersion,
        Capabilities: capabilities
      })
    )
    if (plan.flood > 0) yield* FiberSet.run(fibers, flood)
  })

  const dumpStacks = Effect.sync(() => {
    const now = Date.now()
    const lines = [
      `gcs-bridge guest (TypeScript; no goroutines: fibers and Node handles instead)`,
      `process ${process.pid}, node ${process.version}, bridge up ${Math.round((now - startedAt) / 1000)}s`,
      `bridge: ${connection.description}, negotiated v${Negotiate.ProtocolVersion}, ${plan.sent} messages sent`,
      `requests in flight: ${inFlight.size}`
    ]
    for (const r of inFlight.values()) {
      lines.push(`  fiber #${r.fiber}: message ${r.id} ${r.label}, ${((now - r.since) / 1000).toFixed(3)}s`)
    }
    lines.push(...uvm.describe(), `node handles: ${handleCounts()}`)
    return truncateForWire(lines.join("\n") + "\n")
  })

  const powerOff = Deferred.succeed(ended, "PowerOff").pipe(Effect.andThen(Effect.never))
  // The Linux GCS recovers no panic: the process dies and the host's bridge ends unanswered.
  const crash = (reason: string) =>
    Effect.logError(`gcs-bridge guest: ${reason}: dropping the bridge without an answer`).pipe(
      Effect.andThen(Deferred.succeed(ended, "Crashed")),
      Effect.andThen(Effect.never)
    )

  const handle = Effect.fnUntraced(
    function* (frame: Frame.Frame, key: number) {
      inFlight.set(key, {
        id: frame.id,
        label: guestTypeLabel(frame.type),
        since: Date.now(),
        fiber: yield* Effect.fiberId
      })
      const decoded = Codec.decodeRequest(frame)
      const request = Result.getOrUndefined(decoded)
      // An interrupted handler (power-off, the session ending) answers nothing.
      const result = yield* Effect.result(
        Result.isFailure(decoded)
          ? Effect.fail(invalidJson(decoded.failure))
          : dispatch({ uvm, payload: frame.payload, dumpStacks, powerOff }, decoded.success).pipe(
              Effect.catchTag("GuestCrash", (e) => crash(e.reason)),
              Effect.catchDefect((defect) =>
                Effect.logError("gcs-bridge guest: handler defect", Cause.die(defect)).pipe(
                  Effect.andThen(Effect.fail(Failure.fail(`internal error: ${String(defect)}`)))
                )
              )
            )
      )
      yield* delay
      yield* Result.isSuccess(result)
        ? reply(frame, request, result.success)
        : replyFailure(frame, result.failure, request?.body.ActivityId ?? rawActivityId(frame.payload))
    },
    (effect, _frame, key) =>
      Effect.ensuring(
        effect,
        Effect.sync(() => inFlight.delete(key))
      )
  )

  const onFrame = (frame: Frame.Frame): Effect.Effect<void> => {
    const type = frame.type >>> 0
    if (type === negotiateType && !negotiated) return negotiate(frame)
    if (!negotiated || !isV4Handler(type)) return notImplemented(frame)
    // A WaitForProcess lasts as long as its process, so it must not hold one of
    // the request slots (with maxInFlight live processes the reader would stop
    // for good); waits have their own, far larger bound, as the Linux GCS
    // always runs them detached.
    const slots = type === waitType ? waitPermits : permits
    return slots
      .take(1)
      .pipe(
        Effect.andThen(FiberSet.run(fibers, Effect.ensuring(handle(frame, nextKey++), slots.release(1)))),
        Effect.asVoid
      )
  }

  const reader = new FrameDecoder.FrameReader({ maxFrameSize: options.maxFrameSize, acceptType: () => true })
  const read = connection.stream.pipe(
    Stream.runForEach((chunk) =>
      Effect.suspend(() => {
        const frames = reader.push(chunk)
        const error = reader.error
        return Effect.forEach(frames, onFrame, { discard: true }).pipe(
          Effect.andThen(error === undefined ? Effect.void : Effect.fail(error))
        )
      })
    ),
    Effect.andThen(
      Effect.suspend(() => {
        const error = reader.end()
        return error === undefined ? Effect.succeed<SessionEnd>("PeerClosed") : Effect.fail(error)
      })
    )
  )

  const write = Effect.gen(function* () {
    for (;;) {
      const batch = yield* Queue.takeBetween(outbound, 1, 64)
      const chunks: Array<Uint8Array> = []
      let drop = false
      for (const message of batch) {
        const decision = plan.next(message)
        chunks.push(...decision.bytes)
        if (decision.dropAfter) {
          drop = true
          break
        }
      }
      if (chunks.length > 0) yield* connection.writeAll(chunks)
      // A drop is a clean hang-up: what was written goes out before the FIN, as a guest closing its socket.
      if (drop) return yield* Effect.as(Effect.ignore(connection.endWrite), "Dropped" as const)
    }
  })

  // An exit notification taken but not queued for the writer goes back to the state.
  const pump = Effect.forever(
    Effect.uninterruptibleMask((restore) =>
      restore(Queue.take(uvm.notifications)).pipe(
        Effect.flatMap((pending) =>
          restore(
            send({
              type: MessageType.NotifyContainer,
              id: 0,
              kind: "notification",
              pending,
              frame: notification(pending.containerId, pending.activityId, pending.type)
            })
          ).pipe(Effect.onInterrupt(() => Queue.offer(uvm.notifications, pending)))
        )
      )
    )
  )

  yield* Effect.forkScoped(Deferred.into(write, ended))
  yield* Effect.forkScoped(pump)
  yield* Effect.forkScoped(Deferred.into(read, ended))
  const end = yield* Deferred.await(ended)
  yield* Effect.logDebug(`gcs-bridge guest: ${connection.description} ended: ${end}`)
  return end
}, Effect.scoped)
