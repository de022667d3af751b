/**
 * The one Listener implementation. Engines offer each accepted socket with its peer's identity; the peer is
 * checked on arrival (a refused one is logged and closed, never queued), queued up to a bound, and handed to
 * `accept` in one uninterruptible step, so a timed-out or interrupted accept loses nothing. The guest is not
 * trusted (DESIGN.md): a listener for one VM must not hand over another VM's connection, nor another local user's.
 */
import { Cause, Effect, Queue, type Scope } from "effect"
import type { Address } from "../Address.js"
import type { PeerIdentity } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import { describe, type RawSocket, type Target, transportError } from "./rawSocket.js"

/** Accept backlog when the caller gives none (go-winio uses 16). */
export const DefaultBacklog = 16

/** This process's uid, where the platform has uids. */
export const ourUid = (): number | undefined =>
  typeof process.getuid === "function" ? process.getuid() : undefined

/** Why a listener on `address` refuses `peer`, or undefined; a Unix peer must be `uid` or root (unknown: left to the file mode). */
export const peerRefusal = (
  address: Address,
  peer: PeerIdentity,
  uid: number | undefined
): string | undefined => {
  switch (address._tag) {
    case "VsockAddress":
      return address.cid === "any" || peer.cid === address.cid
        ? undefined
        : `vsock peer CID ${peer.cid ?? "unknown"} is not ${address.cid}`
    case "HvsockAddress":
      return peer.vmId?.toLowerCase() === address.vmId
        ? undefined
        : `Hyper-V peer VM ${peer.vmId ?? "unknown"} is not ${address.vmId}`
    case "UnixAddress":
    case "HybridAddress":
      if (peer.uid === undefined || uid === undefined || peer.uid === uid || peer.uid === 0) return undefined
      return `Unix peer uid ${peer.uid} is neither ${uid} nor root`
    case "MemoryAddress":
      return undefined
  }
}

/** A connection an engine accepted. */
export type Incoming = { readonly raw: RawSocket; readonly peer: PeerIdentity }

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
  Object.entries({ cid: peer.cid, vm: peer.vmId, uid: peer.uid }).reduce(
    (text, [key, value]) => (value === undefined ? text : `${text} ${key} ${value}`),
    peer.family as string
  )

/** A listener owned by the current scope; closing it closes queued connections and fails accepts. */
export const makeListener = Effect.fnUntraced(function* (
  options: ListenerOptions
): Effect.fn.Return<ListenerCore, never, Scope.Scope> {
  const { target, maxPending } = options
  const description = describe(target)
  const context = yield* Effect.context<never>()
  const queue = yield* Queue.make<Incoming, TransportError>()
  let closed = false
  let paused = false
  // Accepts waiting on the queue: a close builds its error (a stack trace, a Schema construction) only for them.
  let waiting = 0
  const closedError = () => transportError("Closed", target, `accept on a closed listener (${description})`)

  const log = (message: string, peer?: PeerIdentity) => {
    const annotations = peer === undefined ? {} : { peer: describePeer(peer) }
    Effect.runForkWith(context)(
      Effect.annotateLogs(Effect.logWarning(message), { listener: description, ...annotations })
    )
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      for (let next = Queue.takeUnsafe(queue); next?._tag === "Success"; next = Queue.takeUnsafe(queue)) {
        next.value.raw.close()
      }
      if (waiting > 0) Queue.failCauseUnsafe(queue, Cause.fail(closedError()))
    })
  )

  const take = Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      if (closed) return Effect.fail(closedError())
      waiting++
      const taken = Effect.ensuring(
        restore(Queue.take(queue)),
        Effect.sync(() => void waiting--)
      )
      return Effect.flatMap(taken, (incoming) => {
        if (paused && Queue.sizeUnsafe(queue) < maxPending) {
          paused = false
          options.resumeSource?.()
        }
        return makeConnection(incoming.raw, target, incoming.peer)
      })
    })
  )

  const timedOut = `no connection to ${description} arrived in time`
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
              Effect.fail(transportError("AcceptTimeout", target, timedOut, "ETIMEDOUT", "accept"))
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
      const full =
        Queue.sizeUnsafe(queue) >= maxPending
          ? `${maxPending} connections already wait for accept`
          : undefined
      const refusal = closed ? undefined : (options.verify?.(incoming.peer) ?? full)
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
