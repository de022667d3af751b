/** A bound listening endpoint for one vsock port of one address. */
import type { Duration, Effect, Scope } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { TransportError } from "./TransportError.js"

/** Options of `Listener.accept`. */
export interface AcceptOptions {
  /** Deadline for a connection to arrive; on expiry `accept` fails with `AcceptTimeout`. No deadline when absent. */
  readonly timeout?: Duration.Input
}

/**
 * A listener owned by the `Scope` it was created in: closing that scope stops listening, removes the socket
 * file (unix / hybrid), closes connections that arrived but were not accepted, and fails a pending `accept`
 * with `Closed`. Peers that fail the address's check (a vsock CID or Hyper-V VM id other than the address's,
 * a Unix peer of another uid) are refused: logged, closed, and never returned by `accept`.
 */
export interface Listener {
  readonly address: Address
  readonly port: number
  /** e.g. `"unix:///run/vm.sock port 1073741824"`. */
  readonly description: string
  /** The next accepted peer, owned by the caller's `Scope`. */
  accept(options?: AcceptOptions): Effect.Effect<Connection, TransportError, Scope.Scope>
}
