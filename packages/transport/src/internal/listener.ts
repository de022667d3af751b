/**
 * The one Listener implementation. Engines offer each accepted socket with the
 * peer's identity; the peer is checked on arrival (a refused peer is logged and
 * closed at once, never queued), queued up to a bound, and handed to `accept`,
 * which takes it from the queue and gives it to the caller's scope in one
 * uninterruptible step, so a timed-out or interrupted accept loses nothing.
 */
import { Cause, Effect, Queue } from "effect"
import type { Scope } from "effect"
import type { Address } from "../Address.js"
import type { PeerIdentity } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import type { Target } from "./errors.js"
import { describe, transportError } from "./errors.js"
import type { RawSocket } from "./rawSocket.js"

/** A connection an engine accepted. */
export interface Incoming {
  readonly raw: RawSocket
  readonly peer: PeerIdentity
}

/** How an engine plugs into the shared listener. */
export interface ListenerOptions {
  readonly address: Address
  readonly port: number
  readonly target: Target
  /** Why `peer` must be refused, or undefined to accept it. */
  readonly verify?: (peer: PeerIdentity) => string | undefined
  /** Accepted-but-not-yet-taken connections held at most. */
  readonly maxPending: number
  /** Called when the queue is full and when it has room again (an engine that can stop accepting does so). */
  readonly pauseSource?: () => void
  readonly resumeSource?: () => void
}

/** What an engine drives. */
export interface ListenerCore {
  readonly listener: Listener
  /** An engine accepted `incoming`: check it, then queue it or refuse it. */
  readonly offer: (incoming: Incoming) => void
  /** Whether `offer` would queue a connection now (the in-memory engine refuses connects otherwise). */
  readonly hasRoom: () => boolean
  /** Logs a problem that does not stop the listener (a transient accept failure). */
  readonly warn: (message: string) => void
  /** The engine failed: connections already queued are still accepted, then accepts fail with `error`. */
  readonly fail: (error: TransportError) => void
}

const describePeer = (peer: PeerIdentity): string =>
  [
    peer.family,
    ...(peer.cid === undefined ? [] : [`cid ${peer.cid}`]),
    ...(peer.vmId === undefined ? [] : [`vm ${peer.vmId}`]),
    ...(peer.uid === undefined ? [] : [`uid ${peer.uid}`])
  ].join(" ")

/**
 * A listener whose lifetime is the current scope: closing it closes the
 * connections still queued and fails waiting accepts with `Closed`.
 */
export const makeListener = Effect.fnUntraced(function* (
  options: ListenerOptions
): Effect.fn.Return<ListenerCore, never, Scope.Scope> {
  const { target, maxPending } = options
  const description = describe(target)
  const context = yield* Effect.context<never>()
  const queue = yield* Queue.make<Incoming, TransportError>()
  let closed = false
  let paused = false

  const log = (message: string, peer?: PeerIdentity) =>
    Effect.runForkWith(context)(
      Effect.logWarning(message).pipe(
        Effect.annotateLogs({
          listener: description,
          ...(peer === undefined ? {} : { peer: describePeer(peer) })
        })
      )
    )

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      for (let next = Queue.takeUnsafe(queue); next?._tag === "Success"; next = Queue.takeUnsafe(queue)) {
        next.value.raw.close()
      }
      Queue.failCauseUnsafe(
        queue,
        Cause.fail(transportError("Closed", target, `accept on a closed listener (${description})`))
      )
    })
  )

  const take = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(Queue.take(queue)), (incoming) => {
      if (paused && Queue.sizeUnsafe(queue) < maxPending) {
        paused = false
        options.resumeSource?.()
      }
      return makeConnection({ raw: incoming.raw, target, description, peer: incoming.peer })
    })
  )

  const listener: Listener = {
    address: options.address,
    port: options.port,
    description,
    accept: (acceptOptions) =>
      acceptOptions?.timeout === undefined
        ? take
        : Effect.timeoutOrElse(take, {
            duration: acceptOptions.timeout,
            orElse: () =>
              Effect.fail(
                transportError("AcceptTimeout", target, `no connection to ${description} arrived in time`, {
                  code: "ETIMEDOUT",
                  syscall: "accept",
                  message: "accept timed out"
                })
              )
          })
  }

  return {
    listener,
    hasRoom: () => !closed && Queue.sizeUnsafe(queue) < maxPending,
    warn: (message) => log(message),
    fail: (error) => {
      log(`listener failed: ${error.message}`)
      Queue.failCauseUnsafe(queue, Cause.fail(error))
    },
    offer: (incoming) => {
      const refusal = closed
        ? undefined
        : (options.verify?.(incoming.peer) ??
          (Queue.sizeUnsafe(queue) >= maxPending
            ? `${maxPending} connections already wait for accept`
            : undefined))
      if (closed || refusal !== undefined || !Queue.offerUnsafe(queue, incoming)) {
        incoming.raw.close()
        if (refusal !== undefined) log(`refused connection: ${refusal}`, incoming.peer)
        return
      }
      if (Queue.sizeUnsafe(queue) >= maxPending && options.pauseSource !== undefined) {
        paused = true
        options.pauseSource()
      }
    }
  }
})
