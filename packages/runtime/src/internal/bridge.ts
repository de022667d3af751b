/** Request/response multiplexing: calls are completed by id as the bytes arrive; queued calls leave in one `writeAll`. */
import { Codec, FrameDecoder, HResult, MessageType, ProtocolError } from "@gcs-bridge/protocol"
import { Frame as Framing } from "@gcs-bridge/protocol"
import type { Container, Envelope, Frame, Rpc } from "@gcs-bridge/protocol"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, LogLevel, Metric } from "effect"
import { References, Result, Schedule, Scope } from "effect"
import { BridgeClosed, type BridgeClosedReason, BridgeReconnected } from "../Errors.js"
import { type CallError, GuestError } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import { scrubRequestPayload } from "./scrub.js"

type ProcName = MessageType.ProcName
type Failure = ProtocolError.ProtocolError

/** How the owner of the bridge handled a container notification. */
export type NotificationRoute = "delivered" | "expected" | "unknown"

/** Settings of one bridge (see `GuestConnectionConfig`). */
export interface BridgeOptions {
  readonly maxFrameSize: number
  readonly strict: boolean
  readonly writeQueueCapacity: number
  /** Abandoned calls remembered so that their late responses are recognised. */
  readonly maxAbandonedCalls: number
  readonly stallTimeout: Duration.Input | undefined
  /** Routes a container notification; runs in the connection's read callback, must not block. */
  readonly onNotification: (notification: Container.ContainerNotification) => NotificationRoute
  /** Runs once, synchronously, when the bridge dies, after every pending call has failed. */
  readonly onClose: (error: BridgeClosed) => void
  /** The first message id (a restored connection continues the saved counter); default 0. */
  readonly firstId?: number | undefined
  /** Survive a broken connection (off by default): see {@link Reconnect}. */
  readonly reconnect?: Reconnect | undefined
}

/**
 * The reconnect policy: when the connection ends or fails (not a protocol violation, not the host's close),
 * the guest's next connection is accepted within `window`, `handshake` runs on it before anything queued is
 * written, every wait for a process is re-issued, and every other call that was written fails with
 * `BridgeReconnected`. Calls made meanwhile queue; past the window the bridge dies of the original break.
 */
export interface Reconnect {
  readonly window: Duration.Duration
  /** The guest's next connection, living in the scope given. */
  readonly accept: Effect.Effect<Connection, TransportError, Scope.Scope>
  /** The first exchange on a new connection; the calls it makes through `bridge` go out at once. */
  readonly handshake: (bridge: Bridge) => Effect.Effect<unknown, CallError | TransportError>
}

/** A call that has been registered and queued. */
export interface Call<N extends ProcName> {
  readonly id: number
  readonly proc: N
  /** The decoded response, the guest's error, or `BridgeClosed`. Awaiting it never abandons the call. */
  readonly result: Deferred.Deferred<Rpc.RpcResponse<N>, CallError>
}

/** A running bridge. */
export interface Bridge {
  /**
   * Registers, encodes and queues a call; an unencodable body fails only this call. A caller waiting for room in
   * the queue can be interrupted, even in a masked region.
   */
  readonly send: <N extends ProcName>(
    proc: N,
    containerId: string,
    body: Rpc.RpcRequest<N>
  ) => Effect.Effect<Call<N>, BridgeClosed | Failure>
  /** Waits for the answer; interrupting the waiter abandons the call. */
  readonly await: <N extends ProcName>(call: Call<N>) => Effect.Effect<Rpc.RpcResponse<N>, CallError>
  /** Sends and waits. */
  readonly call: <N extends ProcName>(
    proc: N,
    containerId: string,
    body: Rpc.RpcRequest<N>
  ) => Effect.Effect<Rpc.RpcResponse<N>, CallError>
  /** Completes with the cause once the bridge is dead. */
  readonly closed: Effect.Effect<BridgeClosed>
  /** The `BridgeClosed` of a dead bridge, `undefined` while it runs. */
  readonly dead: () => BridgeClosed | undefined
  /** Kills the bridge without waiting for the teardown. */
  readonly kill: (reason: BridgeClosedReason) => Effect.Effect<BridgeClosed>
  /** The id the next call will carry (saved by a migration). */
  readonly nextId: () => number
  /** Registers a WaitForProcess under `id` without sending it (§12.9 restore); an id still registered is reused. */
  readonly preregister: (
    id: number,
    containerId: string,
    body: Rpc.RpcRequest<"WaitForProcess">
  ) => Effect.Effect<Call<"WaitForProcess">, BridgeClosed | Failure>
  /** Stops waiting for `call`'s answer: if one comes, it is dropped as late. */
  readonly abandon: (call: Call<ProcName>) => void
  /** Runs `effect` while the bridge lives, interruptible even when forked from an interruption handler. */
  readonly background: (effect: Effect.Effect<unknown, unknown>) => Effect.Effect<void>
  /** Kills the bridge (`Closed`) and waits for its fibers and connection to close. */
  readonly close: Effect.Effect<void>
}

/** The non-generic view of a pending call that the reader, writer and health check work on. */
type Entry = Omit<Pending<ProcName>, "result">

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`

class Pending<N extends ProcName> implements Call<N> {
  readonly startedAt = performance.now()
  constructor(
    readonly id: number,
    readonly proc: N,
    readonly containerId: string,
    public bytes: Uint8Array | undefined,
    readonly sentAt: number,
    // "superseded": re-issued under another id after a reconnect, sharing its result with the new call.
    public state: "queued" | "written" | "cancelled" | "abandoned" | "superseded" = "queued",
    readonly result = Deferred.makeUnsafe<Rpc.RpcResponse<N>, CallError>()
  ) {}
  fail(exit: Exit.Exit<never, CallError>): void {
    Deferred.doneUnsafe(this.result, exit)
  }
  /** Completes the call with the guest's answer; gives the error it failed with. */
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
  private guestFailure(response: Pick<Envelope.ResponseBase, "Result" | "ErrorMessage" | "ErrorRecords">) {
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

// A write can meet the guest's hang-up before the reader sees the end of the stream: the same end, told first.
const hungUp = new Set(["EPIPE", "ECONNRESET"])

// Warnings a guest can cause per frame: this many per kind and window are logged, the rest summarised.
const warningBurst = 5
const warningWindowMs = 10_000

/** What an inbound frame left to do: nothing, a log line, or a fatal violation. */
type Outcome = undefined | Effect.Effect<void> | Failure

/** Starts a bridge over `connection` in the current scope, whose closing closes it (`Closed`). */
export const make = Effect.fnUntraced(function* (connection: Connection, options: BridgeOptions) {
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const clock = yield* Clock.Clock
  // Payload logging costs a decode and a scrub per frame: decide once.
  const traceFrames = LogLevel.isLessThanOrEqualTo(yield* References.MinimumLogLevel, "Trace")
  // The write queue: calls made in one synchronous run (say, every caller a read woke) go out in one write, in
  // a microtask after it; Effect's Queue would wake a writer fiber a macrotask later, with 2 KB more per call.
  // No fiber waits for work: a flush runs the write on a fiber of its own, which ends at once unless the
  // write waits for the engine's drain; then the next flush waits for it (`writing`).
  const outbox: Array<Entry> = []
  let flushScheduled = false
  let writing: Fiber.Fiber<void, TransportError> | undefined
  // Callers beyond the queue's capacity wait in line, in order, holding nothing of the bridge (no id or bytes).
  // Made when a caller first has to wait, as are `abandoned` and `windows`: an idle bridge holds none of them.
  let line: Set<Deferred.Deferred<void>> | undefined
  const admit = (room: number) => {
    if (line === undefined) return
    for (const turn of line) {
      if (room-- <= 0) return
      line.delete(turn)
      Deferred.doneUnsafe(turn, Exit.void)
    }
  }
  const closedSignal = Deferred.makeUnsafe<BridgeClosed>()
  const pending = new Map<number, Entry>()
  let abandoned: Set<number> | undefined
  let nextId = options.firstId ?? 0
  // The connection in use; replaced by the reconnect policy, while `down` no writer runs.
  let link = connection
  let down = false
  // The bridge's fibers: the current connection's reader, the stall watch, a reconnect's recovery (and `writing`).
  let linkReader: Fiber.Fiber<void> | undefined
  let stallWatcher: Fiber.Fiber<never> | undefined
  let recovery: Fiber.Fiber<void, unknown> | undefined
  const present = (...all: Array<Fiber.Fiber<unknown, unknown> | undefined>) =>
    all.filter((fiber) => fiber !== undefined)
  const bridgeFibers = () => present(stallWatcher, linkReader, writing, recovery)
  let dead: BridgeClosed | undefined
  let lastInboundAt = clock.currentTimeMillisUnsafe()

  const count = (metric: Metric.Metric<number, unknown>, n = 1) => metric.updateUnsafe(n, context)
  const inFlight = (n: number) => Metrics.rpcInFlight.modifyUnsafe(n, context)

  const kill = (reason: BridgeClosedReason, cause?: TransportError | Failure, why?: string): BridgeClosed => {
    if (dead !== undefined) return dead
    const message = why ?? deathMessages[reason] ?? `bridge closed: ${cause?.message ?? reason}`
    const error = new BridgeClosed({ reason, message, ...(cause ? { cause } : {}) })
    dead = error
    count(Metric.withAttributes(Metrics.bridgeDeaths, { reason }))
    inFlight(-pending.size)
    const failed = Exit.fail(error)
    for (const entry of pending.values()) entry.fail(failed)
    pending.clear()
    abandoned?.clear()
    // Releases callers waiting for room; the writer is interrupted by the teardown.
    admit(Infinity)
    Deferred.doneUnsafe(closedSignal, Exit.succeed(error))
    options.onClose(error)
    // The teardown, at once and without a fiber waiting for it per bridge: every fiber is told to stop (one that
    // called kill stops when it next yields) and the connection is closed in this very step.
    for (const fiber of bridgeFibers()) fiber.interruptUnsafe()
    const log = () =>
      Effect.annotateLogs(Effect.logError("bridge forcibly terminating"), { reason, error: message })
    Effect.runForkWith(context)(reason === "Closed" ? link.close : Effect.andThen(log(), link.close))
    return error
  }

  // Registered before the bytes can reach the writer: a fast answer always finds its call.
  const register = <E extends Entry>(entry: E): E => {
    pending.set(entry.id, entry)
    inFlight(1)
    return entry
  }
  const forget = (entry: Entry): void => {
    if (pending.delete(entry.id)) inFlight(-1)
  }
  const cancel = (entry: Entry): void => {
    forget(entry)
    entry.fail(Exit.interrupt())
  }

  // A written call whose answer nobody needs any more, remembered so that a late answer is recognised.
  const remember = (entry: Entry, state: "abandoned" | "superseded"): void => {
    entry.state = state
    abandoned ??= new Set()
    abandoned.add(entry.id)
    if (abandoned.size > options.maxAbandonedCalls) {
      // Bounded memory even if the guest never answers abandoned calls.
      const [oldest = -1] = abandoned
      abandoned.delete(oldest)
      const evicted = pending.get(oldest)
      // A superseded call's result belongs to its re-issued twin.
      if (evicted !== undefined) (evicted.state === "superseded" ? forget : cancel)(evicted)
    }
  }

  const abandon = (entry: Entry): void => {
    if (entry.state === "queued") {
      // The writer skips it: the guest never sees it.
      entry.state = "cancelled"
      cancel(entry)
    } else if (entry.state === "written" && pending.has(entry.id)) remember(entry, "abandoned")
  }

  const send = <N extends ProcName>(
    proc: N,
    containerId: string,
    body: Rpc.RpcRequest<N>,
    admitted = false,
    direct = false
  ): Effect.Effect<Call<N>, BridgeClosed | Failure> =>
    Effect.suspend(() => {
      // Exit.fail keeps the one BridgeClosed value for every caller.
      if (dead !== undefined) return Exit.fail(dead)
      if (
        !direct &&
        (outbox.length >= options.writeQueueCapacity || (!admitted && line !== undefined && line.size > 0))
      ) {
        const turn = Deferred.makeUnsafe<void>()
        ;(line ??= new Set()).add(turn)
        // Interruptible even in a masked region (an exec's): waiting for room is the only wait of a send.
        return Effect.andThen(Deferred.await(turn), send(proc, containerId, body, true)).pipe(
          // A caller that leaves after its turn came hands it on.
          Effect.onInterrupt(() => Effect.sync(() => line?.delete(turn) || admit(1))),
          Effect.interruptible
        )
      }
      const id = nextId++
      const encoded = Codec.encodeRequest(proc, id, body)
      if (Result.isFailure(encoded)) return Exit.fail(encoded.failure)
      const now = clock.currentTimeMillisUnsafe()
      const entry = register(
        new Pending(id, proc, containerId, encoded.success, now, direct ? "written" : "queued")
      )
      // A handshake's call goes out at once, ahead of everything queued; a failed write is a broken link.
      if (direct) {
        const write = Effect.catch(link.writeAll([encoded.success]), (e) =>
          Effect.sync(() => lost("Transport", e))
        )
        return Effect.as(write, entry)
      }
      outbox.push(entry)
      if (!flushScheduled) {
        flushScheduled = true
        queueMicrotask(flush)
      }
      const queued = Exit.succeed(entry)
      if (!traceFrames) return queued
      const payload = scrubRequestPayload(proc, textDecoder.decode(encoded.success.subarray(16)))
      const type = MessageType.typeName(MessageType.requestType(MessageType.Proc[proc]))
      return Effect.andThen(
        Effect.annotateLogs(Effect.logTrace("bridge send"), { type, "message-id": id, payload }),
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
  const onFailure =
    (fiber: string) =>
    (cause: Cause.Cause<TransportError | Failure>): Effect.Effect<void> => {
      const failure = Cause.findError(cause)
      if (Result.isSuccess(failure)) {
        const error = failure.success
        return Effect.sync(() =>
          error instanceof ProtocolError.ProtocolError
            ? kill("Protocol", error)
            : lost(hungUp.has(error.code ?? "") ? "EndOfStream" : "Transport", error)
        )
      }
      if (dead !== undefined || Cause.hasInterruptsOnly(cause)) return Effect.void
      return Effect.andThen(
        Effect.logError(`bridge ${fiber} failed unexpectedly`, cause),
        Effect.sync(() => kill("Defect"))
      )
    }

  // Per kind: the end of the current window, and how many warnings it logged and dropped.
  let windows: Map<string, { until: number; logged: number; dropped: number }> | undefined
  const warn = (kind: string, message: string): Outcome => {
    const now = clock.currentTimeMillisUnsafe()
    windows ??= new Map()
    const open = windows.get(kind)
    const window =
      open === undefined || now >= open.until ? { until: now + warningWindowMs, logged: 0, dropped: 0 } : open
    windows.set(kind, window)
    if (window.logged < warningBurst) return (window.logged++, Effect.logWarning(message))
    if (window.dropped++ > 0) return undefined
    // The first dropped warning schedules the summary, logged at the window's end or the bridge's close.
    const summary = Effect.suspend(() =>
      Effect.logWarning(`… ${window.dropped} more ${kind} warnings in the last 10 s (counted in the metrics)`)
    )
    return Effect.asVoid(Effect.forkIn(Effect.ensuring(Effect.sleep(window.until - now), summary), scope))
  }
  const fatalIfStrict = (error: Failure): Outcome =>
    options.strict ? error : warn(error.reason, error.message)
  const violation = (counter: Metric.Metric<number, unknown>, error: Failure): Outcome => {
    count(counter)
    return fatalIfStrict(error)
  }
  const frameError = (frame: Frame.Frame, reason: Failure["reason"], message: string) =>
    new ProtocolError.ProtocolError({ reason, message, messageType: frame.type, id: frame.id })

  const completeResponse = (frame: Frame.Frame): Outcome => {
    const entry = pending.get(frame.id)
    if (entry === undefined) {
      const message = `response ${MessageType.typeName(frame.type)} for message id ${frame.id}, which matches no outstanding call`
      return violation(Metrics.unknownResponses, frameError(frame, "UnmatchedId", message))
    }
    forget(entry)
    Metrics.rpcLatencyOf(entry.proc).updateUnsafe(performance.now() - entry.startedAt, context)
    const annotations = { proc: entry.proc, "message-id": entry.id }
    let late: Outcome
    if (entry.state === "abandoned" || entry.state === "superseded") {
      abandoned?.delete(entry.id)
      count(Metrics.lateResponses)
      late = Effect.annotateLogs(Effect.logDebug("ignoring response to abandoned bridge call"), annotations)
    }
    const error = entry.answer(frame.payload)
    if (error instanceof GuestError) {
      if (error.errorRecords.length === 0) return late
      const records = { result: hex(error.hresult), "error-records": error.errorRecords }
      return Effect.annotateLogs(Effect.logDebug("guest call failed"), { ...annotations, ...records })
    }
    return error === undefined ? late : fatalIfStrict(error)
  }

  const routeNotification = (frame: Frame.Frame): Outcome => {
    const unknown = (reason: "UnknownType" | "UnknownContainer", message: string) =>
      violation(Metrics.unknownNotifications, frameError(frame, reason, message))
    if (frame.type !== MessageType.NotifyContainer)
      return unknown("UnknownType", `unknown notification ${MessageType.typeName(frame.type)}`)
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

  // One decoder over the byte stream, driven from the connection's read callback: no stage, no fiber per frame.
  // A fresh decoder per connection: bytes left of a broken one mean nothing on the next.
  const newFrameReader = () =>
    new FrameDecoder.FrameReader({
      maxFrameSize: options.maxFrameSize,
      acceptType: (type) => {
        const cls = MessageType.classOf(type)
        return cls === MessageType.MessageClass.Response || cls === MessageType.MessageClass.Notification
      }
    })
  let frameReader = newFrameReader()

  // Runs in the engine's read callback (`Connection.forEach`): answers complete their calls right there, and a
  // read wakes no fiber. Log lines and a violation, rare, go to a fiber run on the spot, in frame order.
  const onChunk = (bytes: Uint8Array): void => {
    if (dead !== undefined) return
    lastInboundAt = clock.currentTimeMillisUnsafe()
    let effects: Array<Effect.Effect<void>> | undefined
    let violation: Failure | undefined
    for (const frame of frameReader.push(bytes)) {
      // A caller woken by an answer may have closed the bridge: the rest of the chunk is for nobody.
      if (dead !== undefined) return
      if (traceFrames) {
        const payload = textDecoder.decode(frame.payload)
        const annotations = { type: MessageType.typeName(frame.type), "message-id": frame.id, payload }
        ;(effects ??= []).push(Effect.annotateLogs(Effect.logTrace("bridge receive"), annotations))
      }
      const outcome =
        MessageType.classOf(frame.type) === MessageType.MessageClass.Response
          ? completeResponse(frame)
          : routeNotification(frame)
      if (outcome instanceof ProtocolError.ProtocolError) {
        violation = outcome
        break
      }
      if (outcome !== undefined) (effects ??= []).push(outcome)
    }
    violation ??= frameReader.error
    if (effects === undefined && violation === undefined) return
    const logged = effects === undefined ? Effect.void : Effect.all(effects, { discard: true })
    Effect.runForkWith(context)(
      violation === undefined ? logged : Effect.andThen(logged, onFailure("reader")(Cause.fail(violation)))
    )
  }

  const reader = (conn: Connection) =>
    conn.forEach(onChunk).pipe(
      // Ending inside a frame is a truncation, not a clean end (but still a broken link to reconnect).
      Effect.andThen(
        Effect.suspend(() => {
          const truncated = frameReader.end()
          if (truncated !== undefined && options.reconnect === undefined) return Exit.fail(truncated)
          return Effect.sync(() => lost("EndOfStream", truncated))
        })
      ),
      Effect.catchCause(onFailure("reader"))
    )

  const written = (exit: Exit.Exit<void, TransportError>) => {
    writing = undefined
    if (Exit.isFailure(exit)) Effect.runForkWith(context)(onFailure("writer")(exit.cause))
    else if (outbox.length > 0) flush()
  }
  function flush(): void {
    flushScheduled = false
    // While a write waits for the drain or the link is down, what is queued waits: the flush comes after.
    if (writing !== undefined || down || dead !== undefined || outbox.length === 0) return
    const entries = outbox.splice(0)
    admit(options.writeQueueCapacity)
    const buffers: Array<Uint8Array> = []
    for (const entry of entries) {
      if (entry.state !== "queued" || entry.bytes === undefined) continue
      entry.state = "written"
      buffers.push(entry.bytes)
      // A wait is re-issued after a reconnect: its bytes are kept, copied out of the shared encoding slab.
      entry.bytes =
        options.reconnect === undefined || entry.proc !== "WaitForProcess" ? undefined : entry.bytes.slice()
    }
    if (buffers.length === 0) return
    Metrics.writeBatchSize.updateUnsafe(buffers.length, context)
    const fiber = Effect.runForkWith(context)(link.writeAll(buffers))
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return written(exit)
    writing = fiber
    fiber.addObserver(written)
  }

  const stallWatch = (limit: number) =>
    Effect.sync(() => {
      const now = clock.currentTimeMillisUnsafe()
      // A WaitForProcess legitimately stays unanswered for a process's lifetime.
      const stalled = (e: Entry) =>
        e.proc !== "WaitForProcess" && e.state !== "queued" && now - e.sentAt >= limit
      if (!down && now - lastInboundAt >= limit && Array.from(pending.values()).some(stalled))
        kill("Unresponsive")
    }).pipe(Effect.delay(Math.max(1, limit / 2)), Effect.forever)

  linkReader = yield* Effect.forkIn(reader(connection), scope)
  if (options.stallTimeout !== undefined)
    stallWatcher = yield* Effect.forkIn(stallWatch(Duration.toMillis(options.stallTimeout)), scope)

  type Break = readonly [BridgeClosedReason, TransportError | Failure | undefined]
  // While a new connection's handshake runs: completed if that connection breaks too.
  let broken: Deferred.Deferred<Break> | undefined
  // A broken connection is the end, unless the reconnect policy is on; then a recovery is forked (only then:
  // an idle bridge costs no fiber for it), after `lost` returns, as it interrupts the fiber that called it.
  function lost(reason: BridgeClosedReason, cause?: TransportError | Failure): void {
    if (options.reconnect === undefined || dead !== undefined) return void kill(reason, cause)
    if (broken !== undefined) return void Deferred.doneUnsafe(broken, Exit.succeed([reason, cause]))
    if (down) return
    down = true
    recovery = Effect.runForkWith(context)(
      Effect.andThen(Effect.yieldNow, recover(options.reconnect, reason, cause))
    )
  }

  // After a reconnect: waits go out again under new ids (their old ids superseded), other written calls fail.
  const resumeCalls = (): Array<Uint8Array> => {
    const reissued: Array<Uint8Array> = []
    for (const entry of Array.from(pending.values()) as Array<Pending<ProcName>>) {
      if (entry.state !== "written") continue
      if (entry.proc === "WaitForProcess" && entry.bytes !== undefined) {
        const bytes = entry.bytes.slice()
        const id = nextId++
        Framing.writeHeader(
          bytes,
          MessageType.requestType(MessageType.Proc.WaitForProcess),
          id,
          bytes.length - Framing.HeaderSize
        )
        const now = clock.currentTimeMillisUnsafe()
        register(new Pending(id, entry.proc, entry.containerId, bytes, now, "written", entry.result))
        remember(entry, "superseded")
        reissued.push(bytes)
      } else {
        const message = `the bridge connection broke while ${entry.proc} (message id ${entry.id}) was in flight and was re-established; the guest may or may not have carried it out`
        entry.fail(Exit.fail(new BridgeReconnected({ proc: entry.proc, id: entry.id, message })))
        remember(entry, "abandoned")
      }
    }
    return reissued
  }

  let linkScope: Scope.Closeable | undefined
  const recover = (
    policy: Reconnect,
    reason: BridgeClosedReason,
    cause: TransportError | Failure | undefined
  ) => {
    const direct: Bridge = {
      ...bridge,
      send: (proc, containerId, body) => send(proc, containerId, body, true, true),
      call: (proc, containerId, body) => Effect.flatMap(send(proc, containerId, body, true, true), awaitCall)
    }
    const attempt = Effect.gen(function* () {
      const next = yield* Scope.fork(scope)
      const conn = yield* Effect.onError(Scope.provide(policy.accept, next), () =>
        Scope.close(next, Exit.void)
      )
      link = conn
      frameReader = newFrameReader()
      const linkBroken = (broken = Deferred.makeUnsafe<Break>())
      linkReader = yield* Effect.forkIn(reader(conn), next)
      const failed = Effect.flatMap(Deferred.await(linkBroken), ([, cause]) =>
        Effect.fail(cause ?? new BridgeClosed({ reason: "EndOfStream", message: deathMessages.EndOfStream! }))
      )
      yield* Effect.raceFirst(policy.handshake(direct), failed).pipe(
        Effect.andThen(Effect.suspend(() => conn.writeAll(resumeCalls()))),
        Effect.onError(() =>
          Effect.andThen(Fiber.interruptAll(present(linkReader)), Scope.close(next, Exit.void))
        )
      )
      linkScope = next
      broken = undefined
      down = false
      flush()
      count(Metrics.bridgeReconnects)
      yield* Effect.logInfo("bridge re-established")
    })
    return Effect.gen(function* () {
      yield* Fiber.interruptAll(present(linkReader, writing))
      yield* link.close
      if (linkScope !== undefined) yield* Scope.close(linkScope, Exit.void)
      const window = Duration.format(policy.window)
      const why = cause?.message ?? deathMessages[reason]?.replace("bridge closed: ", "") ?? reason
      yield* Effect.logWarning(
        `bridge connection lost (${why}); waiting up to ${window} for the guest to re-dial`
      )
      const outcome = yield* attempt.pipe(
        Effect.tapError((e) => Effect.logDebug(`bridge reconnect attempt failed: ${e.message}`)),
        Effect.retry(Schedule.spaced(Duration.millis(50))),
        Effect.timeoutOption(policy.window)
      )
      if (outcome._tag === "None")
        kill(
          reason,
          cause,
          `bridge closed: the guest did not re-establish the bridge within ${window} (${why})`
        )
    })
  }

  // Waits until every fiber of the bridge has ended and its connection is closed (they were told to at death).
  const close = Effect.sync(() => kill("Closed")).pipe(
    Effect.andThen(Effect.suspend(() => Fiber.awaitAll(bridgeFibers()))),
    Effect.andThen(Effect.suspend(() => link.close)),
    Effect.asVoid,
    Effect.uninterruptible
  )
  yield* Scope.addFinalizer(scope, close)

  const bridge: Bridge = {
    send,
    await: awaitCall,
    call: <N extends ProcName>(proc: N, containerId: string, body: Rpc.RpcRequest<N>) =>
      Effect.flatMap(send(proc, containerId, body), awaitCall),
    closed: Deferred.await(closedSignal),
    dead: () => dead,
    kill: (reason: BridgeClosedReason) => Effect.sync(() => kill(reason)),
    background: (effect: Effect.Effect<unknown, unknown>) =>
      Effect.asVoid(Effect.forkIn(Effect.interruptible(Effect.ignore(effect)), scope)),
    nextId: () => nextId,
    preregister: (id, containerId, body) =>
      Effect.suspend((): Effect.Effect<Call<"WaitForProcess">, BridgeClosed | Failure> => {
        const registered = pending.get(id)
        if (registered?.proc === "WaitForProcess")
          return Exit.succeed(registered as Pending<"WaitForProcess">)
        if (dead !== undefined) return Exit.fail(dead)
        const encoded = Codec.encodeRequest("WaitForProcess", id, body)
        if (Result.isFailure(encoded)) return Exit.fail(encoded.failure)
        const bytes = options.reconnect === undefined ? undefined : encoded.success.slice()
        const now = clock.currentTimeMillisUnsafe()
        // New calls must never reuse an id the guest may still answer.
        nextId = Math.max(nextId, id + 1)
        return Exit.succeed(register(new Pending(id, "WaitForProcess", containerId, bytes, now, "written")))
      }),
    abandon: (call) => {
      const entry = pending.get(call.id)
      if (entry !== undefined && entry === (call as unknown)) abandon(entry)
    },
    close
  }
  return bridge
})
