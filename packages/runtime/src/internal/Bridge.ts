/**
 * The bridge: request/response multiplexing over one transport connection.
 *
 * One reader fiber decodes frames and completes calls by id; one writer fiber
 * drains the outbound queue, writing everything queued with a single
 * `writeAll`. Callers never touch the socket: a call allocates its id,
 * registers itself and encodes its frame synchronously, then queues the bytes.
 */
import type { ContainerNotification, Frame, ProcName, RpcRequest, RpcResponse } from "@gcs-bridge/protocol"
import {
  FrameReader,
  MessageClass,
  NotifyContainer,
  Proc,
  ProtocolError,
  classOf,
  decodeNotification,
  decodeResponse,
  decodeResponseBase,
  encodeRequest,
  hresultName,
  requestType,
  typeName
} from "@gcs-bridge/protocol"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import {
  Cause,
  Chunk,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  LogLevel,
  MetricLabel,
  Option,
  Scope,
  Stream
} from "effect"
import { BridgeClosed, type BridgeClosedReason } from "../BridgeClosed.js"
import type { CallError } from "../CallError.js"
import { GuestError } from "../GuestError.js"
import * as Metrics from "../Metrics.js"
import { Mailbox } from "./mailbox.js"
import { scrubRequestPayload } from "./scrub.js"

export type { CallError }

/** How the owner of the bridge handled a container notification. */
export type NotificationRoute =
  /** A container was waiting for it. */
  | "delivered"
  /** Nobody waits, but the owner expected it might arrive (a container it already released). */
  | "expected"
  /** No container with that id is known. */
  | "unknown"

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
  readonly stallTimeout: Option.Option<Duration.Duration>
  /** Routes a decoded container notification; runs on the reader fiber, must not block. */
  readonly onNotification: (notification: ContainerNotification) => NotificationRoute
  /** Runs once, synchronously, when the bridge dies, after every pending call has failed. */
  readonly onClose: (error: BridgeClosed) => void
}

/** A call that has been registered and queued. */
export interface Call<N extends ProcName> {
  readonly id: number
  readonly proc: N
  /**
   * Completes with the decoded response, the guest's error, or `BridgeClosed`.
   * Awaiting it never abandons the call; `Bridge.call` does that on
   * interruption.
   */
  readonly result: Deferred.Deferred<RpcResponse<N>, CallError>
}

/** The bridge, as the runtime's services use it. */
export interface Bridge {
  /**
   * Registers a call, encodes it and queues its frame. Fails with
   * `ProtocolError` (`EncodeFailed`) when the body cannot be encoded — only
   * this call fails — and with `BridgeClosed` when the bridge is dead.
   */
  readonly send: <N extends ProcName>(
    proc: N,
    containerId: string,
    body: RpcRequest<N>
  ) => Effect.Effect<Call<N>, BridgeClosed | ProtocolError>
  /**
   * `send` and wait for the answer. Interrupting the caller abandons the
   * call: nothing is written if it is still queued, otherwise its late
   * response is matched and dropped.
   */
  readonly call: <N extends ProcName>(
    proc: N,
    containerId: string,
    body: RpcRequest<N>,
    onQueued?: (id: number) => void
  ) => Effect.Effect<RpcResponse<N>, CallError>
  /** Waits for `call`'s answer, abandoning the call if the waiter is interrupted. */
  readonly await: <N extends ProcName>(call: Call<N>) => Effect.Effect<RpcResponse<N>, CallError>
  /** Completes with the bridge's `BridgeClosed` once it has died. */
  readonly closed: Effect.Effect<BridgeClosed>
  /** The `BridgeClosed` of a dead bridge, `undefined` while it runs. */
  readonly deadError: () => BridgeClosed | undefined
  /** Runs `effect` in the background for as long as the bridge lives. */
  readonly background: (effect: Effect.Effect<unknown, unknown>) => Effect.Effect<void>
  /** Kills the bridge with `reason` unless it is already dead; gives its `BridgeClosed` without waiting for the teardown. */
  readonly kill: (reason: BridgeClosedReason) => Effect.Effect<BridgeClosed>
  /** Closes the bridge (reason `Closed`) and waits until its fibers have stopped and its connection is closed. */
  readonly close: Effect.Effect<void>
}

type CallState = "queued" | "written" | "cancelled" | "abandoned"

type CallExit = Exit.Exit<unknown, CallError>

interface Entry {
  readonly id: number
  readonly proc: ProcName
  readonly containerId: string
  readonly sentAt: number
  readonly startedAt: number
  state: CallState
  /** `send`'s calls: the result for any number of waiters. */
  readonly deferred: Deferred.Deferred<unknown, CallError> | undefined
  /** `call`'s single waiter, once it waits. */
  listener: ((exit: CallExit) => void) | undefined
  /** The result, when it came before `call`'s waiter. */
  result: CallExit | undefined
}

/** Completes a call, whoever waits for it and however. */
const settle = (entry: Entry, exit: CallExit): void => {
  if (entry.deferred !== undefined) {
    Deferred.unsafeDone(entry.deferred, exit)
    return
  }
  const listener = entry.listener
  if (listener === undefined) {
    entry.result = exit
    return
  }
  entry.listener = undefined
  listener(exit)
}

interface Outbound {
  readonly entry: Entry
  readonly bytes: Uint8Array
}

// One array per proc, reused: metric hooks are cached by the identity of their label array.
const procLabels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const procLabel = (proc: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  let labels = procLabels.get(proc)
  if (labels === undefined) {
    labels = [MetricLabel.make("proc", proc)]
    procLabels.set(proc, labels)
  }
  return labels
}

const textDecoder = new TextDecoder()
const payloadText = (payload: Uint8Array): string => textDecoder.decode(payload)

const deathMessage = (
  reason: BridgeClosedReason,
  cause: TransportError | ProtocolError | undefined
): string => {
  switch (reason) {
    case "Closed":
      return "bridge closed by the host"
    case "EndOfStream":
      return "bridge closed: the guest closed the connection"
    case "Unresponsive":
      return "bridge closed: the guest stopped answering"
    case "Defect":
      return "bridge closed: internal failure of the bridge (see the error log)"
    default:
      return `bridge closed: ${cause?.message ?? reason}`
  }
}

const hresultText = (hresult: number): string =>
  `HRESULT 0x${hresult.toString(16).padStart(8, "0")}${hresultName(hresult) ? ` (${hresultName(hresult)})` : ""}`

/** Accept only what a guest may send: responses of any procedure, and notifications. */
const acceptType = (type: number): boolean => {
  const cls = classOf(type)
  return cls === MessageClass.Response || cls === MessageClass.Notification
}

/**
 * Starts a bridge over `connection`. Its reader, writer and watchdog fibers
 * live in `scope`; closing the scope closes the bridge (pending calls fail
 * with `BridgeClosed` reason `Closed`) and the connection.
 */
export const make = (
  connection: Connection,
  options: BridgeOptions,
  scope: Scope.Scope
): Effect.Effect<Bridge> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const minLevel = yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
    // Payload logging costs a decode and a scrub per frame: decide once.
    const traceFrames = LogLevel.lessThanEqual(minLevel, LogLevel.Trace)
    const mailbox = new Mailbox<Outbound>(options.writeQueueCapacity)
    const closedSignal = yield* Deferred.make<BridgeClosed>()
    const pending = new Map<number, Entry>()
    const abandoned = new Set<number>()
    let nextId = 0
    let dead: BridgeClosed | undefined
    let lastInboundAt = clock.unsafeCurrentTimeMillis()

    const kill = (reason: BridgeClosedReason, cause?: TransportError | ProtocolError): void => {
      if (dead !== undefined) return
      const error = new BridgeClosed({
        reason,
        message: deathMessage(reason, cause),
        ...(cause ? { cause } : {})
      })
      dead = error
      Metrics.bridgeDeaths.unsafeUpdate(1, [MetricLabel.make("reason", reason)])
      const failed = Exit.fail(error)
      Metrics.rpcInFlight.unsafeModify(-pending.size, [])
      for (const entry of pending.values()) settle(entry, failed)
      pending.clear()
      abandoned.clear()
      Deferred.unsafeDone(closedSignal, Exit.succeed(error))
      options.onClose(error)
    }

    const forget = (entry: Entry): void => {
      if (pending.delete(entry.id)) Metrics.rpcInFlight.unsafeModify(-1, [])
    }

    const abandon = (entry: Entry): void => {
      if (entry.state === "queued") {
        // Still in the queue: the writer will skip it, so the guest never sees it.
        entry.state = "cancelled"
        forget(entry)
        settle(entry, Exit.interrupt(FiberId.none))
      } else if (entry.state === "written" && pending.has(entry.id)) {
        entry.state = "abandoned"
        abandoned.add(entry.id)
        if (abandoned.size > options.maxAbandonedCalls) {
          // Bounded memory even if the guest never answers abandoned calls.
          const oldest = abandoned.values().next().value as number
          abandoned.delete(oldest)
          const evicted = pending.get(oldest)
          if (evicted !== undefined) {
            forget(evicted)
            settle(evicted, Exit.interrupt(FiberId.none))
          }
        }
      }
    }

    const awaitCall = <N extends ProcName>(call: Call<N>): Effect.Effect<RpcResponse<N>, CallError> =>
      Effect.onInterrupt(Deferred.await(call.result), () =>
        Effect.sync(() => {
          const entry = pending.get(call.id)
          if (entry !== undefined) abandon(entry)
        })
      )

    const failWhenDead: Effect.Effect<never, BridgeClosed> = Effect.flatMap(
      Deferred.await(closedSignal),
      Exit.fail
    )

    // Slow path only: the writer is behind by `writeQueueCapacity` frames.
    const enqueueSlowly = (item: Outbound): Effect.Effect<void, BridgeClosed> =>
      Effect.suspend(() => {
        if (dead !== undefined) return Exit.fail(dead)
        if (mailbox.offer(item)) return Effect.void
        return Effect.zipRight(Effect.raceFirst(mailbox.room, failWhenDead), enqueueSlowly(item))
      })

    /**
     * Allocates the id, registers the call, encodes its frame and queues it,
     * synchronously unless the writer is far behind.
     */
    const register = (
      proc: ProcName,
      containerId: string,
      body: unknown,
      shared: boolean
    ): Effect.Effect<Entry, BridgeClosed | ProtocolError> =>
      Effect.suspend((): Effect.Effect<Entry, BridgeClosed | ProtocolError> => {
        // Exit.fail keeps the one BridgeClosed value: Effect.fail would wrap it per span.
        if (dead !== undefined) return Exit.fail(dead)
        const id = nextId++
        const encoded = encodeRequest(proc, id, body as RpcRequest<typeof proc>)
        if (Either.isLeft(encoded)) return Effect.fail(encoded.left)
        const entry: Entry = {
          id,
          proc,
          containerId,
          sentAt: clock.unsafeCurrentTimeMillis(),
          startedAt: performance.now(),
          state: "queued",
          deferred: shared ? Deferred.unsafeMake<unknown, CallError>(FiberId.none) : undefined,
          listener: undefined,
          result: undefined
        }
        // Registered before the bytes can reach the writer: a fast answer always finds its call.
        pending.set(id, entry)
        Metrics.rpcInFlight.unsafeModify(1, [])
        const item: Outbound = { entry, bytes: encoded.right }
        const queued: Effect.Effect<Entry, BridgeClosed> = mailbox.offer(item)
          ? Effect.succeed(entry)
          : enqueueSlowly(item).pipe(
              Effect.as(entry),
              Effect.onInterrupt(() => Effect.sync(() => abandon(entry)))
            )
        return traceFrames
          ? Effect.zipRight(
              Effect.logTrace("bridge send").pipe(
                Effect.annotateLogs({
                  type: typeName(requestType(Proc[proc])),
                  "message-id": id,
                  payload: scrubRequestPayload(proc, payloadText(encoded.right.subarray(16)))
                })
              ),
              queued
            )
          : queued
      })

    const send = <N extends ProcName>(
      proc: N,
      containerId: string,
      body: RpcRequest<N>
    ): Effect.Effect<Call<N>, BridgeClosed | ProtocolError> =>
      Effect.map(register(proc, containerId, body, true), (entry) => ({
        id: entry.id,
        proc,
        result: entry.deferred as Deferred.Deferred<RpcResponse<N>, CallError>
      }))

    // The hot path: one waiter, so a callback instead of a Deferred.
    const awaitEntry = (entry: Entry): Effect.Effect<unknown, CallError> =>
      Effect.async<unknown, CallError>((resume) => {
        if (entry.result !== undefined) {
          resume(entry.result)
          return
        }
        entry.listener = resume
        return Effect.sync(() => {
          entry.listener = undefined
          abandon(entry)
        })
      })

    const call = <N extends ProcName>(
      proc: N,
      containerId: string,
      body: RpcRequest<N>,
      onQueued?: (id: number) => void
    ): Effect.Effect<RpcResponse<N>, CallError> =>
      Effect.flatMap(register(proc, containerId, body, false), (entry) => {
        onQueued?.(entry.id)
        return awaitEntry(entry)
      }) as Effect.Effect<RpcResponse<N>, CallError>

    // A bug in the bridge itself must still release every waiter, never leave them hanging.
    const onDefect = (fiber: string, cause: Cause.Cause<unknown>): Effect.Effect<void> =>
      dead !== undefined || Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.zipRight(
            Effect.logError(`bridge ${fiber} failed unexpectedly`, cause),
            Effect.sync(() => kill("Defect"))
          )

    // ---- inbound ----

    type Outcome = undefined | Effect.Effect<void> | ProtocolError

    const completeResponse = (frame: Frame): Outcome => {
      const entry = pending.get(frame.id)
      if (entry === undefined) {
        Metrics.unknownResponses.unsafeUpdate(1, [])
        const error = new ProtocolError({
          reason: "UnmatchedId",
          message: `response ${typeName(frame.type)} for message id ${frame.id}, which matches no outstanding call`,
          messageType: frame.type,
          id: frame.id
        })
        return options.strict ? error : Effect.logWarning(error.message)
      }
      forget(entry)
      Metrics.rpcLatency.unsafeUpdate(performance.now() - entry.startedAt, procLabel(entry.proc))
      let late: Effect.Effect<void> | undefined
      if (entry.state === "abandoned") {
        abandoned.delete(entry.id)
        Metrics.lateResponses.unsafeUpdate(1, [])
        late = Effect.logDebug("ignoring response to abandoned bridge call").pipe(
          Effect.annotateLogs({ proc: entry.proc, "message-id": entry.id })
        )
      }
      const decoded = decodeResponse(entry.proc, frame.payload)
      if (Either.isRight(decoded)) {
        const response = decoded.right as { readonly Result: number }
        if (response.Result === 0) {
          settle(entry, Exit.succeed(decoded.right))
          return late
        }
        return failCall(entry, response as GuestFailure) ?? late
      }
      // A failure response carries only the base; the full schema may reject it.
      const base = decodeResponseBase(frame.payload)
      if (Either.isRight(base) && base.right.Result !== 0) {
        return failCall(entry, base.right as GuestFailure) ?? late
      }
      settle(entry, Exit.fail(decoded.left))
      return options.strict ? decoded.left : Effect.logWarning(decoded.left.message)
    }

    interface GuestFailure {
      readonly Result: number
      readonly ErrorMessage?: string | undefined
      readonly ErrorRecords?: ReadonlyArray<GuestError["errorRecords"][number]> | undefined
    }

    const failCall = (entry: Entry, response: GuestFailure): Outcome => {
      const hresult = response.Result >>> 0
      const records = response.ErrorRecords ?? []
      const error = new GuestError({
        hresult,
        proc: entry.proc,
        containerId: entry.containerId,
        message: response.ErrorMessage ? response.ErrorMessage : hresultText(hresult),
        errorRecords: records
      })
      settle(entry, Exit.fail(error))
      return records.length === 0
        ? undefined
        : Effect.logDebug("guest call failed").pipe(
            Effect.annotateLogs({
              proc: entry.proc,
              "message-id": entry.id,
              result: `0x${hresult.toString(16).padStart(8, "0")}`,
              "error-records": records
            })
          )
    }

    const routeNotification = (frame: Frame): Outcome => {
      if (frame.type !== NotifyContainer) {
        Metrics.unknownNotifications.unsafeUpdate(1, [])
        const error = new ProtocolError({
          reason: "UnknownType",
          message: `unknown notification ${typeName(frame.type)}`,
          messageType: frame.type,
          id: frame.id
        })
        return options.strict ? error : Effect.logWarning(error.message)
      }
      const decoded = decodeNotification(frame.payload)
      if (Either.isLeft(decoded)) {
        Metrics.unknownNotifications.unsafeUpdate(1, [])
        return options.strict ? decoded.left : Effect.logWarning(decoded.left.message)
      }
      const notification = decoded.right
      const route = options.onNotification(notification)
      if (route === "delivered") {
        return Effect.logInfo("container terminated in guest").pipe(
          Effect.annotateLogs({ "container-id": notification.ContainerId, type: notification.Type })
        )
      }
      if (route === "expected") return undefined
      Metrics.unknownNotifications.unsafeUpdate(1, [])
      const error = new ProtocolError({
        reason: "UnknownContainer",
        message: `notification for container ${notification.ContainerId}, which is not known on this connection`,
        messageType: frame.type,
        id: frame.id
      })
      return options.strict ? error : Effect.logWarning(error.message)
    }

    const dispatch = (frame: Frame): Outcome =>
      classOf(frame.type) === MessageClass.Response ? completeResponse(frame) : routeNotification(frame)

    const traceReceive = (frame: Frame): Effect.Effect<void> =>
      Effect.logTrace("bridge receive").pipe(
        Effect.annotateLogs({
          type: typeName(frame.type),
          "message-id": frame.id,
          payload: payloadText(frame.payload)
        })
      )

    // One decoder over the byte stream, driven from the reader's own loop: no stage, no fiber per frame.
    const frameReader = new FrameReader({ maxFrameSize: options.maxFrameSize, acceptType })

    const onBytes = (chunks: Chunk.Chunk<Uint8Array>): Effect.Effect<void, ProtocolError> => {
      lastInboundAt = clock.unsafeCurrentTimeMillis()
      let effects: Array<Effect.Effect<void>> | undefined
      let violation: ProtocolError | undefined
      outer: for (const bytes of chunks) {
        for (const frame of frameReader.push(bytes)) {
          if (traceFrames) (effects ??= []).push(traceReceive(frame))
          const outcome = dispatch(frame)
          if (outcome === undefined) continue
          if (outcome instanceof ProtocolError) {
            violation = outcome
            break outer
          }
          ;(effects ??= []).push(outcome)
        }
        if (frameReader.error !== undefined) {
          violation = frameReader.error
          break
        }
      }
      const logs = effects === undefined ? Effect.void : Effect.all(effects, { discard: true })
      return violation === undefined ? logs : Effect.zipRight(logs, Effect.fail(violation))
    }

    const reader = connection.stream.pipe(
      Stream.runForEachChunk(onBytes),
      // Ending inside a frame is a truncation, not a clean end.
      Effect.zipRight(
        Effect.suspend(() =>
          Option.match(Option.fromNullable(frameReader.end()), {
            onNone: () => Effect.void,
            onSome: Effect.fail
          })
        )
      ),
      Effect.matchCauseEffect({
        onSuccess: () => Effect.sync(() => kill("EndOfStream")),
        onFailure: (cause) => {
          const failure = Chunk.head(Cause.failures(cause))
          if (Option.isSome(failure)) {
            const error = failure.value
            return Effect.sync(() => kill(error instanceof ProtocolError ? "Protocol" : "Transport", error))
          }
          return onDefect("reader", cause)
        }
      })
    )

    // ---- outbound ----

    const writer = Effect.forever(
      Effect.flatMap(mailbox.takeAll, (items) => {
        const buffers: Array<Uint8Array> = []
        for (const item of items) {
          if (item.entry.state !== "queued") continue
          item.entry.state = "written"
          buffers.push(item.bytes)
        }
        if (buffers.length === 0) return Effect.void
        Metrics.writeBatchSize.unsafeUpdate(buffers.length, [])
        return connection.writeAll(buffers)
      })
    ).pipe(
      Effect.catchAllCause((cause) => {
        const failure = Chunk.head(Cause.failures(cause))
        return Option.isSome(failure)
          ? Effect.sync(() => kill("Transport", failure.value))
          : onDefect("writer", cause)
      })
    )

    // ---- health ----

    const stallWatch = (timeout: Duration.Duration): Effect.Effect<never> => {
      const limit = Duration.toMillis(timeout)
      const check = Effect.sync(() => {
        const now = clock.unsafeCurrentTimeMillis()
        if (now - lastInboundAt < limit) return
        for (const entry of pending.values()) {
          // A WaitForProcess legitimately stays unanswered for a process's lifetime.
          if (entry.proc !== "WaitForProcess" && entry.state !== "queued" && now - entry.sentAt >= limit) {
            kill("Unresponsive")
            return
          }
        }
      })
      return Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(Math.max(1, limit / 2))), check))
    }

    const readerFiber = yield* Effect.forkIn(reader, scope)
    const writerFiber = yield* Effect.forkIn(writer, scope)
    const stallFiber = Option.isSome(options.stallTimeout)
      ? yield* Effect.forkIn(stallWatch(options.stallTimeout.value), scope)
      : undefined

    // Tears everything down once the bridge is dead, whoever killed it.
    const watchdog = yield* Effect.forkIn(
      Effect.gen(function* () {
        const error = yield* Deferred.await(closedSignal)
        if (error.reason !== "Closed") {
          yield* Effect.logError("bridge forcibly terminating").pipe(
            Effect.annotateLogs({ reason: error.reason, error: error.message })
          )
        }
        yield* Fiber.interruptAll(
          stallFiber === undefined ? [readerFiber, writerFiber] : [readerFiber, writerFiber, stallFiber]
        )
        yield* connection.close
      }),
      scope
    )

    const close = Effect.suspend(() => {
      kill("Closed")
      return Fiber.await(watchdog)
    }).pipe(Effect.asVoid, Effect.uninterruptible)

    yield* Scope.addFinalizer(scope, close)

    const bridge: Bridge = {
      send,
      call,
      await: awaitCall,
      closed: Deferred.await(closedSignal),
      deadError: () => dead,
      kill: (reason) =>
        Effect.sync(() => {
          kill(reason)
          return dead!
        }),
      // Interruptible whatever the caller's region: background work is often
      // forked from an interruption handler, and an uninterruptible fiber there
      // would make the bridge's close wait forever for an answer that never comes.
      background: (effect) =>
        Effect.asVoid(Effect.forkIn(Effect.interruptible(Effect.ignore(effect)), scope)),
      close
    }
    return bridge
  })
