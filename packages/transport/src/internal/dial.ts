/** What the engines share around dialling and listening: defaults, the connect deadline, the hand-over. */
import { Duration, Effect, Exit, Scope } from "effect"
import type { Connection, PeerIdentity } from "../Connection.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import type { Target } from "./errors.js"
import { describe, transportError } from "./errors.js"
import { hybridHandshake } from "./hybrid.js"
import type { RawSocket } from "./rawSocket.js"

/** Accept backlog when the caller gives none (go-winio uses 16). */
export const DefaultBacklog = 16

/** Deadline of a hybrid connect (dial + CONNECT/OK) when the caller gives none. */
export const DefaultHybridConnectTimeout = Duration.seconds(10)

/**
 * Runs a connect in a child of the current scope within `timeout` (default:
 * 10 s for hybrid, none otherwise). On failure, interruption or expiry what it
 * acquired is released at once; on success it lives as long as the current
 * scope.
 */
export const dialWithin = <A>(
  target: Target,
  hybrid: boolean,
  timeout: Duration.Input | undefined,
  open: Effect.Effect<A, TransportError, Scope.Scope>
): Effect.Effect<A, TransportError, Scope.Scope> => {
  const deadline = timeout ?? (hybrid ? DefaultHybridConnectTimeout : undefined)
  const bounded =
    deadline === undefined
      ? open
      : Effect.timeoutOrElse(open, {
          duration: deadline,
          orElse: () =>
            Effect.fail(
              transportError(
                "ConnectTimeout",
                target,
                `connecting to ${describe(target)} took longer than ${Duration.format(Duration.fromInputUnsafe(deadline))}`,
                { code: "ETIMEDOUT", syscall: "connect", message: "connect timed out" }
              )
            )
        })
  return Effect.flatMap(Effect.scope, (parent) =>
    Effect.flatMap(Scope.fork(parent), (child) =>
      bounded.pipe(
        Scope.provide(child),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(child, exit) : Effect.void))
      )
    )
  )
}

/** A connected socket as a Connection, after the hybrid CONNECT/OK handshake where one is due. */
export const handOver = (
  raw: RawSocket,
  hybrid: boolean,
  target: Target & { readonly port: number },
  peer: PeerIdentity
): Effect.Effect<Connection, TransportError, Scope.Scope> =>
  Effect.flatMap(
    hybrid ? Effect.map(hybridHandshake(raw, target.port, target), (_) => _.leftover) : Effect.succeed([]),
    (initial) => makeConnection({ raw, target, description: describe(target), peer, initial })
  )
