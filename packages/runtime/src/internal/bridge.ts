/**
 * The bridge: request/response multiplexing over one transport connection.
 *
 * One reader fiber decodes frames and completes calls by id; one writer fiber takes everything queued and
 * writes it with a single `writeAll`. Callers never touch the socket: a call takes its id, registers itself
 * and encodes its frame synchronously, then queues it.
 */
import { Codec, FrameDecoder, HResult, MessageType, ProtocolError } from "@gcs-bridge/protocol"
import type { Container, Frame, Rpc } from "@gcs-bridge/protocol"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  LogLevel,
  Metric,
  Queue,
  References,
  Result,
  Scope,
  Stream
} from "effect"
import { BridgeClosed, type BridgeClosedReason } from "../BridgeClosed.js"
import type { CallError } from "../CallError.js"
import { GuestError } from "../GuestError.js"
import * as Metrics from "../Metrics.js"
import { scrubRequestPayload } from "./scrub.js"

type ProcName = MessageType.ProcName
type Failure = ProtocolError.ProtocolError

/** How the owner of the bridge handled a container notification. */
export type NotificationRoute = "delivered" | "expected" | "unknown"

/** Settings of one bridge. */
export interface BridgeOptions {
  /** Largest inbound frame, header included. */
  readonly maxFrameSize: number
  /** Go behaviour: unknown ids, unknown containers and undecodable bodies kill the bridge. */
  readonly strict: boolean
  /** Frames that may wait for the writer before callers are made to wait. */
  readonly writeQueueCapacity: number
  /** Abandoned calls remembered so that their late responses are recognised. */
  readonly maxAbandonedCalls: number
  /** Health policy: see `GuestConnectionConfig.stallTimeout`. */
  readonly stallTimeout: Duration.Duration | undefined
  /** Routes a container notification; runs on the reader fiber, must not block. */
  readonly onNotification: (notification: Container.ContainerNotification) => NotificationRoute
  /** Runs once, synchronously, when the bridge dies, after every pending call has failed. */
  readonly onClose: (error: BridgeClosed) => void
}

/** A call that has been registered and queued. */
export interface Call<N extends ProcName> {
  readonly id: number
  readonly proc: N
  /** The decoded response, the guest's error, or `BridgeClosed`. Awaiting it never abandons the call. */
  readonly result: Deferred.Deferred<Rpc.RpcResponse<N>, CallError>
}

/** The bridge, as the runtime's services use it. */
export type Bridge = Effect.Success<ReturnType<typeof make>>

/** The non-generic view of a pending call that the reader, writer and health check work on. */
interface Entry {
  readonly id: number
  readonly proc: ProcName
  readonly containerId: string
  readonly sentAt: number
  readonly startedAt: number
  state: "queued" | "written" | "cancelled" | "abandoned"
  bytes: Uint8Array | undefined
  fail(exit: Exit.Exit<never, CallError>): void
  /** Decodes the guest's answer and completes the call; gives the error the call failed with. */
  answer(payload: Uint8Array): GuestError | Failure | undefined
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`

class Pending<N extends ProcName> implements Call<N>, Entry {
  state: Entry["state"] = "queued"
  readonly result = Deferred.makeUnsafe<Rpc.RpcResponse<N>, CallError>()
  readonly startedAt = performance.now()
  constructor(
    readonly id: number,
    readonly proc: N,
    readonly containerId: string,
    public bytes: Uint8Array | undefined,
    readonly sentAt: number
  ) {}

  fail(exit: Exit.Exit<never, CallError>): void {
    Deferred.doneUnsafe(this.result, exit)
  }

  answer(payload: Uint8Array): GuestError | Failure | undefined {
    const decoded = Codec.decodeResponse(this.proc, payload)
    if (Result.isSuccess(decoded)) {
      const response: Rpc.RpcResponse<N> = decoded.success
      if (response.Result === 0) {
        Deferred.doneUnsafe(this.result, Exit.succeed(response))
        return undefined
      }
      return this.guestFailure(response)
    }
    // A failure response carries only the base; the full schema may reject it.
    const base = Codec.decodeResponseBase(payload)
    if (Result.isSuccess(base) && base.success.Result !== 0) return this.guestFailure(base.success)
    this.fail(Exit.fail(decoded.failure))
    return decoded.failure
  }

  private guestFailure(response: {
    readonly Result: number
    readonly ErrorMessage?: string | undefined
    readonly ErrorRecords?: GuestError["errorRecords"] | undefined
  }): GuestError {
    const hresult = response.Result >>> 0
    const name = HResult.hresultName(hresult)
    const error = new GuestError({
      hresult,
      proc: this.proc,
      containerId: this.containerId,
      message: response.ErrorMessage || `HRESULT ${hex(hresult)}${name ? ` (${name})` : ""}`,
      errorRecords: response.ErrorRecords ?? []
    })
    this.fail(Exit.fail(error))
    return error
  }
}

const deathMessages: Partial<Record<BridgeClosedReason, string>> = {
  Closed: "bridge closed by the host",
  EndOfStream: "bridge closed: the guest closed the connection",
  Unresponsive: "bridge closed: the guest stopped answering",
  Defect: "bridge closed: internal failure of the bridge (see the error log)"
}

const textDecoder = new TextDecoder()

/** What handling one inbound frame left to do: nothing, a log line, or a fatal protocol violation. */
type Outcome = undefined | Effect.Effect<void> | Failure

/**
 * Starts a bridge over `connection`. Its fibers live in the current scope; closing that scope closes the
 * bridge (pending calls fail with `BridgeClosed` reason `Closed`) and the connection.
 */
export const make = Effect.fnUntraced(function* (connection: Connection, options: BridgeOptions) {
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const clock = yield* Clock.Clock
  // Payload logging costs a decode and a scrub per frame: decide once.
  const traceFrames = LogLevel.isLessThanOrEqualTo(yield* References.MinimumLogLevel, "Trace")
  const queue = yield* Queue.bounded<Entry>(options.writeQueueCapacity)
  const closedSignal = Deferred.makeUnsafe<BridgeClosed>()
  const pending = new Map<number, Entry>()
  const abandoned = new Set<number>()
  let nextId = 0
  let dead: BridgeClosed | undefined
  let lastInboundAt = clock.currentTimeMillisUnsafe()

  const count = (metric: Metric.Metric<number, unknown>, n = 1) => metric.updateUnsafe(n, context)
  const inFlight = (n: number) => Metrics.rpcInFlight.modifyUnsafe(n, context)
  // One derived metric per proc, reused: attributes are merged once per metric.
  const latency = new Map<string, Metric.Metric<number, unknown>>()
  const latencyOf = (proc: string) => {
    let metric = latency.get(proc)
    if (metric === undefined)
      latency.set(proc, (metric = Metric.withAttributes(Metrics.rpcLatency, { proc })))
    return metric
  }

  const kill = (reason: BridgeClosedReason, cause?: TransportError | Failure): BridgeClosed => {
    if (dead !== undefined) return dead
    const message = deathMessages[reason] ?? `bridge closed: ${cause?.message ?? reason}`
    const error = new BridgeClosed({ reason, message, ...(cause ? { cause } : {}) })
    dead = error
    count(Metric.withAttributes(Metrics.bridgeDeaths, { reason }))
    inFlight(-pending.size)
    const failed = Exit.fail(error)
    for (const entry of pending.values()) entry.fail(failed)
    pending.clear()
    abandoned.clear()
    // Releases callers waiting for room; the writer is interrupted by the teardown.
    Queue.shutdownUnsafe(queue)
    Deferred.doneUnsafe(closedSignal, Exit.succeed(error))
    options.onClose(error)
    return error
  }

  const forget = (entry: Entry): void => {
    if (pending.delete(entry.id)) inFlight(-1)
  }

  const abandon = (entry: Entry): void => {
    if (entry.state === "queued") {
      // The writer skips it: the guest never sees it.
      entry.state = "cancelled"
      forget(entry)
      entry.fail(Exit.interrupt())
    } else if (entry.state === "written" && pending.has(entry.id)) {
      entry.state = "abandoned"
      abandoned.add(entry.id)
      if (abandoned.size > options.maxAbandonedCalls) {
        // Bounded memory even if the guest never answers abandoned calls.
        for (const oldest of abandoned) {
          abandoned.delete(oldest)
          const evicted = pending.get(oldest)
          if (evicted !== undefined) {
            forget(evicted)
            evicted.fail(Exit.interrupt())
          }
          break
        }
      }
    }
  }

  // Slow path only: the writer is behind by `writeQueueCapacity` frames.
  const enqueueSlowly = <N extends ProcName>(entry: Pending<N>) =>
    Queue.offer(queue, entry).pipe(
      Effect.flatMap((queued) => (queued ? Exit.succeed(entry) : Exit.fail(dead ?? kill("Defect")))),
      Effect.onInterrupt(() => Effect.sync(() => abandon(entry)))
    )

  const send = <N extends ProcName>(
    proc: N,
    containerId: string,
    body: Rpc.RpcRequest<N>
  ): Effect.Effect<Call<N>, BridgeClosed | Failure> =>
    Effect.suspend((): Effect.Effect<Call<N>, BridgeClosed | Failure> => {
      // Exit.fail keeps the one BridgeClosed value for every caller.
      if (dead !== undefined) return Exit.fail(dead)
      const id = nextId++
      const encoded = Codec.encodeRequest(proc, id, body)
      if (Result.isFailure(encoded)) return Exit.fail(encoded.failure)
      const entry = new Pending(id, proc, containerId, encoded.success, clock.currentTimeMillisUnsafe())
      // Registered before the bytes can reach the writer: a fast answer always finds its call.
      pending.set(id, entry)
      inFlight(1)
      const queued = Queue.offerUnsafe(queue, entry) ? Exit.succeed(entry) : enqueueSlowly(entry)
      if (!traceFrames) return queued
      const payload = scrubRequestPayload(proc, textDecoder.decode(encoded.success.subarray(16)))
      return Effect.andThen(
        Effect.logTrace("bridge send").pipe(
          Effect.annotateLogs({
            type: MessageType.typeName(MessageType.requestType(MessageType.Proc[proc])),
            "message-id": id,
            payload
          })
        ),
        queued
      )
    })

  const awaitCall = <N extends ProcName>(call: Call<N>): Effect.Effect<Rpc.RpcResponse<N>, CallError> =>
    Effect.onInterrupt(Deferred.await(call.result), () =>
      Effect.sync(() => {
        const entry = pending.get(call.id)
        if (entry !== undefined) abandon(entry)
      })
    )

  // A bug in the bridge itself must still release every waiter.
  const onDefect = (fiber: string, cause: Cause.Cause<unknown>): Effect.Effect<void> =>
    dead !== undefined || Cause.hasInterruptsOnly(cause)
      ? Effect.void
      : Effect.andThen(
          Effect.logError(`bridge ${fiber} failed unexpectedly`, cause),
          Effect.sync(() => kill("Defect"))
        )

  // ---- inbound ----

  const violation = (counter: Metric.Metric<number, unknown>, error: Failure): Outcome => {
    count(counter)
    return options.strict ? error : Effect.logWarning(error.message)
  }

  const completeResponse = (frame: Frame.Frame): Outcome => {
    const entry = pending.get(frame.id)
    if (entry === undefined) {
      return violation(
        Metrics.unknownResponses,
        new ProtocolError.ProtocolError({
          reason: "UnmatchedId",
          message: `response ${MessageType.typeName(frame.type)} for message id ${frame.id}, which matches no outstanding call`,
          messageType: frame.type,
          id: frame.id
        })
      )
    }
    forget(entry)
    latencyOf(entry.proc).updateUnsafe(performance.now() - entry.startedAt, context)
    const annotations = { proc: entry.proc, "message-id": entry.id }
    let late: Outcome
    if (entry.state === "abandoned") {
      abandoned.delete(entry.id)
      count(Metrics.lateResponses)
      late = Effect.annotateLogs(Effect.logDebug("ignoring response to abandoned bridge call"), annotations)
    }
    const error = entry.answer(frame.payload)
    if (error instanceof GuestError) {
      if (error.errorRecords.length === 0) return late
      return Effect.annotateLogs(Effect.logDebug("guest call failed"), {
        ...annotations,
        result: hex(error.hresult),
        "error-records": error.errorRecords
      })
    }
    if (error === undefined) return late
    return options.strict ? error : Effect.logWarning(error.message)
  }

  const routeNotification = (frame: Frame.Frame): Outcome => {
    const unknown = (reason: "UnknownType" | "UnknownContainer", message: string) =>
      violation(
        Metrics.unknownNotifications,
        new ProtocolError.ProtocolError({ reason, message, messageType: frame.type, id: frame.id })
      )
    if (frame.type !== MessageType.NotifyContainer) {
      return unknown("UnknownType", `unknown notification ${MessageType.typeName(frame.type)}`)
    }
    const decoded = Codec.decodeNotification(frame.payload)
    if (Result.isFailure(decoded)) return violation(Metrics.unknownNotifications, decoded.failure)
    const notification = decoded.success
    switch (options.onNotification(notification)) {
      case "delivered":
        return Effect.annotateLogs(Effect.logInfo("container terminated in guest"), {
          "container-id": notification.ContainerId,
          type: notification.Type
        })
      case "expected":
        return undefined
      case "unknown":
        return unknown(
          "UnknownContainer",
          `notification for container ${notification.ContainerId}, which is not known on this connection`
        )
    }
  }

  // One decoder over the byte stream, driven from the reader's own loop: no stage, no fiber per frame.
  const frameReader = new FrameDecoder.FrameReader({
    maxFrameSize: options.maxFrameSize,
    acceptType: (type) => {
      const cls = MessageType.classOf(type)
      return cls === MessageType.MessageClass.Response || cls === MessageType.MessageClass.Notification
    }
  })

  const onBytes = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, Failure> => {
    lastInboundAt = clock.currentTimeMillisUnsafe()
    const effects: Array<Effect.Effect<void>> = []
    for (const bytes of chunks) {
      for (const frame of frameReader.push(bytes)) {
        if (traceFrames) {
          effects.push(
            Effect.annotateLogs(Effect.logTrace("bridge receive"), {
              type: MessageType.typeName(frame.type),
              "message-id": frame.id,
              payload: textDecoder.decode(frame.payload)
            })
          )
        }
        const outcome =
          MessageType.classOf(frame.type) === MessageType.MessageClass.Response
            ? completeResponse(frame)
            : routeNotification(frame)
        if (outcome instanceof ProtocolError.ProtocolError)
          return Effect.andThen(Effect.all(effects), Exit.fail(outcome))
        if (outcome !== undefined) effects.push(outcome)
      }
      if (frameReader.error !== undefined)
        return Effect.andThen(Effect.all(effects), Exit.fail(frameReader.error))
    }
    return effects.length === 0 ? Effect.void : Effect.all(effects, { discard: true })
  }

  const reader = connection.stream.pipe(
    Stream.runForEachArray(onBytes),
    // Ending inside a frame is a truncation, not a clean end.
    Effect.andThen(
      Effect.suspend(() => {
        const truncated = frameReader.end()
        return truncated === undefined ? Effect.void : Exit.fail(truncated)
      })
    ),
    Effect.matchCauseEffect({
      onSuccess: () => Effect.sync(() => kill("EndOfStream")),
      onFailure: (cause) => {
        const failure = Cause.findError(cause)
        if (Result.isFailure(failure)) return onDefect("reader", cause)
        const error = failure.success
        return Effect.sync(() =>
          kill(error instanceof ProtocolError.ProtocolError ? "Protocol" : "Transport", error)
        )
      }
    })
  )

  // ---- outbound ----

  const writer = Queue.takeAll(queue).pipe(
    Effect.flatMap((entries) => {
      const buffers: Array<Uint8Array> = []
      for (const entry of entries) {
        if (entry.state !== "queued" || entry.bytes === undefined) continue
        entry.state = "written"
        buffers.push(entry.bytes)
        entry.bytes = undefined
      }
      if (buffers.length === 0) return Effect.void
      Metrics.writeBatchSize.updateUnsafe(buffers.length, context)
      return connection.writeAll(buffers)
    }),
    Effect.forever,
    Effect.catchCause((cause) => {
      const failure = Cause.findError(cause)
      return Result.isSuccess(failure)
        ? Effect.sync(() => kill("Transport", failure.success))
        : onDefect("writer", cause)
    })
  )

  // ---- health ----

  const stallWatch = (limit: number) =>
    Effect.sync(() => {
      const now = clock.currentTimeMillisUnsafe()
      if (now - lastInboundAt < limit) return
      for (const entry of pending.values()) {
        // A WaitForProcess legitimately stays unanswered for a process's lifetime.
        if (entry.proc !== "WaitForProcess" && entry.state !== "queued" && now - entry.sentAt >= limit) {
          kill("Unresponsive")
          return
        }
      }
    }).pipe(Effect.delay(Math.max(1, limit / 2)), Effect.forever)

  const fibers = [yield* Effect.forkIn(reader, scope), yield* Effect.forkIn(writer, scope)]
  if (options.stallTimeout !== undefined) {
    fibers.push(yield* Effect.forkIn(stallWatch(Duration.toMillis(options.stallTimeout)), scope))
  }

  // Tears everything down once the bridge is dead, whoever killed it.
  const watchdog = yield* Effect.forkIn(
    Effect.gen(function* () {
      const error = yield* Deferred.await(closedSignal)
      if (error.reason !== "Closed") {
        yield* Effect.annotateLogs(Effect.logError("bridge forcibly terminating"), {
          reason: error.reason,
          error: error.message
        })
      }
      yield* Fiber.interruptAll(fibers)
      yield* connection.close
    }),
    scope
  )

  const close = Effect.uninterruptible(
    Effect.suspend(() => {
      kill("Closed")
      return Fiber.await(watchdog)
    })
  ).pipe(Effect.asVoid)
  yield* Scope.addFinalizer(scope, close)

  return {
    /** Registers a call, encodes it and queues its frame; an unencodable body fails only this call. */
    send,
    /** Waits for the answer; interrupting the waiter abandons the call (never written if still queued). */
    await: awaitCall,
    /** `send`, then `await`. */
    call: <N extends ProcName>(proc: N, containerId: string, body: Rpc.RpcRequest<N>) =>
      Effect.flatMap(send(proc, containerId, body), awaitCall),
    /** Completes with the bridge's `BridgeClosed` once it has died. */
    closed: Deferred.await(closedSignal),
    /** The `BridgeClosed` of a dead bridge, `undefined` while it runs. */
    dead: () => dead,
    /** Kills the bridge unless it is dead already; gives its `BridgeClosed` without waiting for the teardown. */
    kill: (reason: BridgeClosedReason) => Effect.sync(() => kill(reason)),
    /**
     * Runs `effect` in the background for as long as the bridge lives. Interruptible whatever the caller's
     * region: background work is often forked from an interruption handler, and an uninterruptible fiber
     * there would hold up the bridge's close.
     */
    background: (effect: Effect.Effect<unknown, unknown>) =>
      Effect.asVoid(Effect.forkIn(Effect.interruptible(Effect.ignore(effect)), scope)),
    /** Kills the bridge (`Closed`) and waits until its fibers have stopped and its connection is closed. */
    close
  }
})
