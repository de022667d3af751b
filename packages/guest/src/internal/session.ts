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
 * - Requests outlive the connection they came on ({@link Requests}): a
 *   handler still running when it ends keeps running, and its response — like
 *   one produced but not yet written — goes out on the next connection.
 * - Nothing precedes the answer to NegotiateProtocol: until then the reader
 *   writes its own replies; the writer (responses owed from before included)
 *   and the exit notifications queued by the state start after it.
 */
import type { ProtocolError, Envelope, Frame } from "@gcs-bridge/protocol"
import { Codec, Container, FrameDecoder, GoJson, Guid, MessageType, Negotiate } from "@gcs-bridge/protocol"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import type { Scope } from "effect"
import { Cause, Deferred, Duration, Effect, FiberSet, Queue, Result, Stream } from "effect"
import type { ResolvedGuestOptions } from "../GuestOptions.js"
import { dispatch, echo, errorResponse, guestTypeLabel, invalidJson, isV4Handler } from "./dispatch.js"
import * as Failure from "./failure.js"
import type { GuestFailure } from "./failure.js"
import type { OutboundFrame } from "./faultPlan.js"
import { FaultPlan } from "./faultPlan.js"
import type { Requests } from "./requests.js"
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

const negotiateType = MessageType.requestType(MessageType.Proc.NegotiateProtocol)
const waitType = MessageType.requestType(MessageType.Proc.WaitForProcess)

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

/**
 * Serves `connection` until it ends; closes it on the way out. Its requests
 * are handled in `requests`, which may outlive it: what they answer after the
 * connection ended is written by the next one given the same `requests`.
 */
export const serveConnection = Effect.fnUntraced(function* (
  uvm: Uvm,
  requests: Requests,
  connection: Connection,
  options: Pick<ResolvedGuestOptions, "faults" | "maxFrameSize">
): Effect.fn.Return<SessionEnd, ProtocolError.ProtocolError | TransportError, Scope.Scope> {
  const faults = new FaultPlan(options.faults)
  // Registered first, so it runs last: after every fiber below is gone.
  yield* Effect.addFinalizer(() => connection.close)
  if (faults.dropImmediately) return "Dropped"

  const scope = yield* Effect.scope
  const ended = yield* Deferred.make<SessionEnd, ProtocolError.ProtocolError | TransportError>()
  const { inFlight } = requests
  const startedAt = Date.now()
  const delay = Duration.isZero(faults.responseDelay) ? Effect.void : Effect.sleep(faults.responseDelay)
  let negotiated = false

  /** The bytes of `batch` as the fault plan decides; how many of its messages they cover, and whether to drop after. */
  const plan = (batch: ReadonlyArray<OutboundFrame>) => {
    const chunks: Array<Uint8Array> = []
    let taken = 0
    let drop = false
    for (const message of batch) {
      const decision = faults.next(message)
      chunks.push(...decision.bytes)
      taken++
      if (decision.dropAfter) {
        drop = true
        break
      }
    }
    return { chunks, taken, drop }
  }

  // A drop is a clean hang-up: what was written goes out before the FIN, as a guest closing its socket.
  const hangUp = Effect.andThen(Effect.ignore(connection.endWrite), Deferred.succeed(ended, "Dropped"))

  const enqueue = (message: OutboundFrame) => Queue.offer(requests.outbound, message)

  // Until the negotiation answer is out the reader writes its replies itself: nothing may precede it.
  const answer = (message: OutboundFrame): Effect.Effect<void, TransportError> =>
    negotiated
      ? Effect.asVoid(enqueue(message))
      : Effect.suspend(() => {
          const { chunks, drop } = plan([message])
          const written = connection.writeAll(chunks)
          return drop ? written.pipe(Effect.andThen(hangUp), Effect.andThen(Effect.never)) : written
        })

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

  const response = (
    frame: Frame.Frame,
    request: Codec.DecodedRequest | undefined,
    body: Envelope.ResponseBase
  ): OutboundFrame => ({
    type: MessageType.responseType(frame.type),
    id: frame.id,
    frame: responseFrame(frame, request, body),
    kind: "response"
  })

  const failure = (frame: Frame.Frame, failure: GuestFailure, activityId: string | undefined) =>
    response(frame, undefined, errorResponse(failure, activityId))

  const notImplemented = (frame: Frame.Frame) =>
    answer(failure(frame, Failure.notImplemented(guestTypeLabel(frame.type)), rawActivityId(frame.payload)))

  const flood = Effect.forEach(
    Array.from({ length: faults.flood }, (_, i) => i),
    (i) =>
      enqueue({
        type: MessageType.NotifyContainer,
        id: 0,
        kind: "flood",
        frame: notification(`gcs-bridge-flood-${i}`, Guid.NullGuid, "UnexpectedExit")
      }),
    { discard: true }
  )

  // The writer takes from the shared queue. A message counts as written once
  // handed to the socket; one the fault plan held back stays for the next connection.
  const nextBatch = Effect.uninterruptibleMask((restore) =>
    Effect.map(
      Effect.suspend(() =>
        requests.unsent.length > 0
          ? Effect.succeed(requests.unsent)
          : restore(Queue.takeBetween(requests.outbound, 1, 64))
      ),
      (batch) => {
        const planned = plan(batch)
        requests.unsent = batch.slice(planned.taken)
        return planned
      }
    )
  )
  const write = Effect.gen(function* () {
    for (;;) {
      const { chunks, drop } = yield* nextBatch
      if (chunks.length > 0) yield* connection.writeAll(chunks)
      if (drop) return yield* Effect.as(hangUp, "Dropped" as const)
    }
  })

  // An exit notification taken but not queued for the writer goes back to the state.
  const pump = Effect.forever(
    Effect.uninterruptibleMask((restore) =>
      restore(Queue.take(uvm.notifications)).pipe(
        Effect.flatMap((pending) =>
          restore(
            enqueue({
              type: MessageType.NotifyContainer,
              id: 0,
              kind: "notification",
              frame: notification(pending.containerId, pending.activityId, pending.type)
            })
          ).pipe(Effect.onInterrupt(() => Queue.offer(uvm.notifications, pending)))
        )
      )
    )
  )

  // Answered on the reader itself, before the next frame is read.
  const negotiate = Effect.fnUntraced(function* (frame: Frame.Frame) {
    // The delay fault holds back every answer, the negotiation's too.
    yield* delay
    const decoded = Codec.decodeRequest(frame)
    if (Result.isFailure(decoded)) {
      return yield* answer(failure(frame, invalidJson(decoded.failure), rawActivityId(frame.payload)))
    }
    const request = decoded.success
    if (request.name !== "NegotiateProtocol") return yield* notImplemented(frame)
    const { MinimumVersion, MaximumVersion, ActivityId } = request.body
    if (MaximumVersion < Negotiate.ProtocolVersion || MinimumVersion > Negotiate.ProtocolVersion) {
      return yield* answer(failure(frame, Failure.bare(Failure.Hr.UnsupportedProtocolVersion), ActivityId))
    }
    yield* answer(
      response(
        frame,
        request,
        new Negotiate.NegotiateProtocolResponse({
          ...echo(ActivityId),
          Version: Negotiate.ProtocolVersion,
          Capabilities: capabilities
        })
      )
    )
    negotiated = true
    yield* Effect.forkIn(Deferred.into(write, ended), scope)
    // Queued before the pump answers anything: the flood follows the negotiate answer, whatever the timing.
    if (faults.flood > 0) yield* flood
    yield* Effect.forkIn(pump, scope)
  })

  const dumpStacks = Effect.sync(() => {
    const now = Date.now()
    const lines = [
      `gcs-bridge guest (TypeScript; no goroutines: fibers and Node handles instead)`,
      `process ${process.pid}, node ${process.version}, bridge up ${Math.round((now - startedAt) / 1000)}s`,
      `bridge: ${connection.description}, negotiated v${Negotiate.ProtocolVersion}, ${faults.sent} messages sent`,
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
  // The handler ends unanswered too, giving its request slot back.
  const crash = (reason: string) =>
    Effect.logError(`gcs-bridge guest: ${reason}: dropping the bridge without an answer`).pipe(
      Effect.andThen(Deferred.succeed(ended, "Crashed")),
      Effect.andThen(Effect.interrupt)
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
      // An interrupted handler (power-off, the guest stopping) answers nothing.
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
      yield* enqueue(
        Result.isSuccess(result)
          ? response(frame, request, result.success)
          : failure(frame, result.failure, request?.body.ActivityId ?? rawActivityId(frame.payload))
      )
    },
    (effect, _frame, key) =>
      Effect.ensuring(
        effect,
        Effect.sync(() => inFlight.delete(key))
      )
  )

  const onFrame = (frame: Frame.Frame): Effect.Effect<void, TransportError> => {
    const type = frame.type >>> 0
    if (type === negotiateType && !negotiated) return negotiate(frame)
    if (!negotiated || !isV4Handler(type)) return notImplemented(frame)
    // A WaitForProcess lasts as long as its process, so it must not hold one of
    // the request slots (with maxInFlight live processes the reader would stop
    // for good); waits have their own, far larger bound, as the Linux GCS
    // always runs them detached.
    const slots = type === waitType ? requests.waitPermits : requests.permits
    return slots
      .take(1)
      .pipe(
        Effect.andThen(
          FiberSet.run(requests.fibers, Effect.ensuring(handle(frame, requests.nextKey++), slots.release(1)))
        ),
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

  yield* Effect.forkScoped(Deferred.into(read, ended))
  const end = yield* Deferred.await(ended)
  yield* Effect.logDebug(`gcs-bridge guest: ${connection.description} ended: ${end}`)
  return end
}, Effect.scoped)
