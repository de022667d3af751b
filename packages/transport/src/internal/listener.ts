/**
 * The one Listener implementation. Engines offer each accepted socket with the
 * peer's identity; the peer is checked on arrival (a refused peer is logged and
 * closed at once, never queued), queued up to a bound, and handed to `accept`.
 * As with reads, a waiting accept is only woken: the socket is taken by the
 * accepting fiber in an uninterruptible step that also gives it to the
 * caller's scope, so a timed-out or interrupted accept loses nothing.
 */
import { Effect, Option, Runtime } from "effect"
import type { Scope } from "effect"
import type { Address } from "../Address.js"
import type { Connection, PeerIdentity } from "../Connection.js"
import type { AcceptOptions, Listener } from "../Listener.js"
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
export interface ListenerCoreOptions {
  readonly address: Address
  readonly port: number
  readonly target: Target
  /** Why `peer` must be refused, or undefined to accept it. */
  readonly verify: (peer: PeerIdentity) => string | undefined
  /** Accepted-but-not-yet-taken connections held at most. */
  readonly maxPending: number
  /** Called when the queue is full and when it has room again (an engine that can stop accepting does so). */
  readonly pauseSource?: () => void
  readonly resumeSource?: () => void
  /** Where refusals are logged. */
  readonly runtime: Runtime.Runtime<never>
}

const describePeer = (peer: PeerIdentity): string => {
  const parts: Array<string> = [peer.family]
  if (peer.cid !== undefined) parts.push(`cid ${peer.cid}`)
  if (peer.vmId !== undefined) parts.push(`vm ${peer.vmId}`)
  if (peer.uid !== undefined) parts.push(`uid ${peer.uid}`)
  return parts.join(" ")
}

/** Accept queue, peer checks and lifetime of one listener. */
export class ListenerCore {
  private readonly pending: Array<Incoming> = []
  private readonly waiters = new Set<() => void>()
  private closed = false
  private failure: TransportError | undefined
  private paused = false
  readonly description: string

  constructor(private readonly options: ListenerCoreOptions) {
    this.description = describe(options.target)
  }

  private log(message: string, peer: PeerIdentity | undefined): void {
    Runtime.runFork(this.options.runtime)(
      Effect.logWarning(message).pipe(
        Effect.annotateLogs({
          listener: this.description,
          ...(peer === undefined ? {} : { peer: describePeer(peer) })
        })
      )
    )
  }

  /** Whether `offer` would queue a connection now (the in-memory engine refuses connects otherwise). */
  hasRoom(): boolean {
    return !this.closed && this.pending.length < this.options.maxPending
  }

  /** An engine accepted `incoming`: check it, then queue it or refuse it. */
  offer(incoming: Incoming): void {
    if (this.closed) {
      incoming.raw.close()
      return
    }
    const refusal = this.options.verify(incoming.peer)
    if (refusal !== undefined) {
      incoming.raw.close()
      this.log(`refused connection: ${refusal}`, incoming.peer)
      return
    }
    if (this.pending.length >= this.options.maxPending) {
      incoming.raw.close()
      this.log(
        `refused connection: ${this.pending.length} connections already wait for accept`,
        incoming.peer
      )
      return
    }
    this.pending.push(incoming)
    if (this.pending.length >= this.options.maxPending && this.options.pauseSource !== undefined) {
      this.paused = true
      this.options.pauseSource()
    }
    this.wake()
  }

  /** Logs a problem that does not stop the listener (a transient accept failure). */
  warn(message: string): void {
    this.log(message, undefined)
  }

  /** The engine failed; pending and future accepts fail with `error`. */
  fail(error: TransportError): void {
    this.failure ??= error
    this.log(`listener failed: ${error.message}`, undefined)
    this.wake()
  }

  /** Stops the listener: queued connections are closed, waiting accepts fail with `Closed`. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const incoming of this.pending.splice(0)) incoming.raw.close()
    this.wake()
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  private readonly available: Effect.Effect<void, TransportError> = Effect.async<void, TransportError>(
    (resume) => {
      const settle = (): boolean => {
        if (this.closed) {
          resume(
            Effect.fail(
              transportError(
                "Closed",
                this.options.target,
                `accept on a closed listener (${this.description})`
              )
            )
          )
        } else if (this.pending.length > 0) resume(Effect.void)
        else if (this.failure !== undefined) resume(Effect.fail(this.failure))
        else return false
        return true
      }
      if (settle()) return
      const waiter = () => {
        if (settle()) this.waiters.delete(waiter)
      }
      this.waiters.add(waiter)
      return Effect.sync(() => {
        this.waiters.delete(waiter)
      })
    }
  )

  private takeOne(): Incoming | undefined {
    const next = this.pending.shift()
    if (
      this.paused &&
      this.pending.length < this.options.maxPending &&
      this.options.resumeSource !== undefined
    ) {
      this.paused = false
      this.options.resumeSource()
    }
    return next
  }

  private readonly attempt: Effect.Effect<Option.Option<Connection>, TransportError, Scope.Scope> =
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(this.available),
        Effect.suspend(() => {
          const next = this.takeOne()
          return next === undefined
            ? Effect.succeedNone
            : Effect.asSome(
                makeConnection({
                  raw: next.raw,
                  target: this.options.target,
                  description: this.description,
                  peer: next.peer
                })
              )
        })
      )
    )

  private readonly acceptLoop: Effect.Effect<Connection, TransportError, Scope.Scope> = Effect.flatMap(
    this.attempt,
    Option.match({ onNone: () => this.acceptLoop, onSome: Effect.succeed })
  )

  /** The Listener seen by users. */
  toListener(): Listener {
    return {
      address: this.options.address,
      port: this.options.port,
      description: this.description,
      accept: (options?: AcceptOptions) => this.accept(options)
    }
  }

  private accept(options?: AcceptOptions): Effect.Effect<Connection, TransportError, Scope.Scope> {
    return options?.timeout === undefined
      ? this.acceptLoop
      : Effect.timeoutFail(this.acceptLoop, {
          duration: options.timeout,
          onTimeout: () =>
            transportError(
              "AcceptTimeout",
              this.options.target,
              `no connection to ${this.description} arrived in time`,
              { code: "ETIMEDOUT", syscall: "accept", message: "accept timed out" }
            )
        })
  }
}
