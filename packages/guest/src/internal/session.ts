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
import type { DecodedRequest, Frame, ProtocolError } from "@gcs-bridge/protocol"
import {
  ContainerNotification,
  decodeRequest,
  encodeNotification,
  encodeResponse,
  encodeResponseTo,
  FrameReader,
  GcsCapabilities,
  goStringify,
  HResult,
  isGuid,
  LinuxGuestDefinedCapabilities,
  NegotiateProtocolResponse,
  NotifyContainer,
  NullGuid,
  parsePayload,
  Proc,
  ProtocolVersion,
  requestType,
  responseType,
  SchemaVersion
} from "@gcs-bridge/protocol"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberId,
  FiberSet,
  Option,
  Queue,
  Stream
} from "effect"
import type { Fault } from "../Fault.js"
import type { ResponseBody } from "./dispatch.js"
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

/** Tuning of a session. */
export interface SessionOptions {
  readonly faults: ReadonlyArray<Fault>
  /** Largest inbound frame (header included). */
  readonly maxFrameSize: number
  /** Requests handled at once before the reader pauses. */
  readonly maxInFlight: number
}

interface Outbound extends OutboundFrame {
  /** A real exit notification, to hand back to the state if never written. */
  readonly pending?: PendingNotification
}

interface InFlight {
  readonly id: number
  readonly label: string
  readonly since: number
  readonly fiber: string
}

const negotiateType = requestType(Proc.NegotiateProtocol)
const waitType = requestType(Proc.WaitForProcess)
/** WaitForProcess requests allowed at once per ordinary request slot. */
const WaitsPerRequestSlot = 64

/** DumpStacks text is kept well under the host's 64 KiB frame limit once JSON-escaped. */
const MaxStacksJsonBytes = 60_000

/** What the Linux GCS reports at negotiation (§7.3, the genuine response). */
const capabilities = new GcsCapabilities({
  SupportedSchemaVersions: [new SchemaVersion({ Major: 2, Minor: 1 })],
  RuntimeOsType: "Linux",
  GuestDefinedCapabilities: new LinuxGuestDefinedCapabilities({
    NamespaceAddRequestSupported: true,
    SignalProcessSupported: true,
    DumpStacksSupported: true,
    DeleteContainerStateSupported: true
  })
})

/** The `ActivityId` of a payload, read leniently like the Linux GCS pre-parses the base. */
const rawActivityId = (payload: Uint8Array): string | undefined => {
  const json = Either.getOrUndefined(parsePayload(payload))
  if (typeof json !== "object" || json === null) return undefined
  const id = (json as Record<string, unknown>)["ActivityId"]
  return typeof id === "string" ? id : undefined
}

const truncateForWire = (text: string): string => {
  const size = (t: string) => Buffer.byteLength(goStringify(t, { escapeHtml: true }))
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

/** Serves `connection` until it ends; closes it on the way out. */
export const serveConnection = (
  uvm: Uvm,
  connection: Connection,
  options: SessionOptions
): Effect.Effect<SessionEnd, ProtocolError | TransportError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const plan = new FaultPlan(options.faults)
      const outbound = yield* Queue.bounded<Outbound>(Math.max(1, options.maxInFlight))
      // Registered first, so it runs last: after every fiber below is gone.
      yield* Effect.addFinalizer(() =>
        Queue.takeAll(outbound).pipe(
          Effect.flatMap((left) =>
            Effect.forEach(
              left,
              (o) => (o.pending === undefined ? Effect.void : Queue.offer(uvm.notifications, o.pending)),
              {
                discard: true
              }
            )
          ),
          Effect.zipRight(connection.close)
        )
      )
      if (plan.dropImmediately) return "Dropped" as const

      const ended = yield* Deferred.make<SessionEnd, ProtocolError | TransportError>()
      const permits = yield* Effect.makeSemaphore(Math.max(1, options.maxInFlight))
      const waitPermits = yield* Effect.makeSemaphore(Math.max(1, options.maxInFlight) * WaitsPerRequestSlot)
      const fibers = yield* FiberSet.make()
      const inFlight = new Map<number, InFlight>()
      const startedAt = Date.now()
      let negotiated = false
      let nextKey = 0

      const send = (message: Outbound) => Queue.offer(outbound, message)

      /** The frame answering `frame`; an encoding bug becomes an E_FAIL reply rather than silence. */
      const responseFrame = (
        frame: Frame,
        request: DecodedRequest | undefined,
        body: ResponseBody
      ): Uint8Array => {
        try {
          return request === undefined
            ? encodeResponseTo(frame.type, frame.id, body)
            : encodeResponse(request.name, frame.id, body)
        } catch (e) {
          const failure = Failure.fail(
            `failed to encode the response: ${e instanceof Error ? e.message : String(e)}`
          )
          return encodeResponseTo(frame.type, frame.id, errorResponse(failure, undefined))
        }
      }

      const reply = (frame: Frame, request: DecodedRequest | undefined, body: ResponseBody) =>
        send({
          type: responseType(frame.type),
          id: frame.id,
          frame: responseFrame(frame, request, body),
          kind: "response"
        })

      const replyFailure = (frame: Frame, failure: GuestFailure, activityId: string | undefined) =>
        reply(frame, undefined, errorResponse(failure, activityId))

      const notImplemented = (frame: Frame) =>
        replyFailure(frame, Failure.notImplemented(guestTypeLabel(frame.type)), rawActivityId(frame.payload))

      const flood = Effect.forEach(
        Array.from({ length: plan.flood }, (_, i) => i),
        (i) =>
          send({
            type: NotifyContainer,
            id: 0,
            kind: "flood",
            frame: encodeNotification(
              new ContainerNotification({
                ContainerId: `gcs-bridge-flood-${i}`,
                ActivityId: NullGuid,
                Type: "UnexpectedExit",
                Operation: "None",
                Result: 0
              })
            )
          }),
        { discard: true }
      )

      const negotiate = (frame: Frame) =>
        Effect.gen(function* () {
          // The delay fault holds back every answer, the negotiation's too (it is answered on the reader).
          if (Duration.greaterThan(plan.responseDelay, Duration.zero)) yield* Effect.sleep(plan.responseDelay)
          const decoded = decodeRequest(frame)
          if (Either.isLeft(decoded))
            return yield* replyFailure(frame, invalidJson(decoded.left), rawActivityId(frame.payload))
          const request = decoded.right
          if (request.name !== "NegotiateProtocol") return yield* notImplemented(frame)
          const { MinimumVersion, MaximumVersion, ActivityId } = request.body
          if (MaximumVersion < ProtocolVersion || MinimumVersion > ProtocolVersion) {
            return yield* replyFailure(frame, Failure.bare(HResult.UnsupportedProtocolVersion), ActivityId)
          }
          negotiated = true
          yield* reply(
            frame,
            request,
            new NegotiateProtocolResponse({
              ...echo(ActivityId),
              Version: ProtocolVersion,
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
          `bridge: ${connection.description}, negotiated v${ProtocolVersion}, ${plan.sent} messages sent`,
          `requests in flight: ${inFlight.size}`
        ]
        for (const r of inFlight.values()) {
          lines.push(
            `  fiber ${r.fiber}: message ${r.id} ${r.label}, ${((now - r.since) / 1000).toFixed(3)}s`
          )
        }
        lines.push(...uvm.describe())
        lines.push(`node handles: ${handleCounts()}`)
        return truncateForWire(lines.join("\n") + "\n")
      })

      const powerOff = Deferred.succeed(ended, "PowerOff" as const).pipe(Effect.zipRight(Effect.never))

      const handle = (frame: Frame, slots: Effect.Semaphore) => {
        const key = nextKey++
        return Effect.gen(function* () {
          const fiber = FiberId.threadName(yield* Effect.fiberId)
          inFlight.set(key, { id: frame.id, label: guestTypeLabel(frame.type), since: Date.now(), fiber })
          const decoded = decodeRequest(frame)
          const request = Either.getOrUndefined(decoded)
          const result: Exit.Exit<ResponseBody, GuestFailure> = Either.isLeft(decoded)
            ? Exit.fail(invalidJson(decoded.left))
            : yield* dispatch({ uvm, payload: frame.payload, dumpStacks, powerOff }, decoded.right).pipe(
                Effect.catchAllDefect((defect) =>
                  Effect.logError("gcs-bridge guest: handler defect", Cause.die(defect)).pipe(
                    Effect.zipRight(Effect.fail(Failure.fail(`internal error: ${String(defect)}`)))
                  )
                ),
                Effect.exit
              )
          if (Duration.greaterThan(plan.responseDelay, Duration.zero)) yield* Effect.sleep(plan.responseDelay)
          yield* Exit.match(result, {
            onSuccess: (body) => reply(frame, request, body),
            onFailure: (cause) =>
              Option.match(Cause.failureOption(cause), {
                onNone: () => Effect.void,
                onSome: (failure) =>
                  replyFailure(frame, failure, request?.body.ActivityId ?? rawActivityId(frame.payload))
              })
          })
        }).pipe(Effect.ensuring(Effect.sync(() => inFlight.delete(key))), Effect.ensuring(slots.release(1)))
      }

      const onFrame = (frame: Frame): Effect.Effect<void> => {
        const type = frame.type >>> 0
        if (type === negotiateType && !negotiated) return negotiate(frame)
        if (!negotiated || !isV4Handler(type)) return notImplemented(frame)
        // A WaitForProcess lasts as long as its process, so it must not hold one of
        // the request slots (with maxInFlight live processes the reader would stop
        // for good); waits have their own, far larger bound, as the Linux GCS
        // always runs them detached.
        const slots = type === waitType ? waitPermits : permits
        return slots.take(1).pipe(Effect.zipRight(FiberSet.run(fibers, handle(frame, slots))), Effect.asVoid)
      }

      const reader = new FrameReader({ maxFrameSize: options.maxFrameSize, acceptType: () => true })
      const read = connection.stream.pipe(
        Stream.runForEach((chunk) =>
          Effect.suspend(() => {
            const frames = reader.push(chunk)
            const error = reader.error
            return Effect.forEach(frames, onFrame, { discard: true }).pipe(
              Effect.zipRight(error === undefined ? Effect.void : Effect.fail(error))
            )
          })
        ),
        Effect.zipRight(
          Effect.suspend(() => {
            const error = reader.end()
            return error === undefined ? Effect.succeed("PeerClosed" as const) : Effect.fail(error)
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
          if (drop) return "Dropped" as const
        }
      })

      const pump = Effect.forever(
        Effect.uninterruptibleMask((restore) =>
          restore(Queue.take(uvm.notifications)).pipe(
            Effect.flatMap((pending) =>
              restore(
                send({
                  type: NotifyContainer,
                  id: 0,
                  kind: "notification",
                  pending,
                  frame: encodeNotification(
                    new ContainerNotification({
                      ContainerId: pending.containerId,
                      ActivityId: isGuid(pending.activityId) ? pending.activityId : NullGuid,
                      Type: pending.type,
                      Operation: "None",
                      Result: 0
                    })
                  )
                })
              ).pipe(Effect.onInterrupt(() => Queue.offer(uvm.notifications, pending)))
            )
          )
        )
      )

      const settle = <E extends ProtocolError | TransportError>(effect: Effect.Effect<SessionEnd, E>) =>
        effect.pipe(
          Effect.exit,
          Effect.flatMap((exit) => Deferred.complete(ended, exit))
        )

      yield* Effect.forkScoped(settle(write))
      yield* Effect.forkScoped(pump)
      yield* Effect.forkScoped(settle(read))
      const end = yield* Deferred.await(ended)
      yield* Effect.logDebug(`gcs-bridge guest: ${connection.description} ended: ${end}`)
      return end
    })
  )
