/**
 * The requests a guest is serving and the frames it owes the host, kept
 * apart from any one bridge connection: as the Linux GCS writes every
 * response through whichever connection is current, a request read on one
 * connection may be answered on the next. Lives as long as the scope it was
 * made in, whose closing interrupts every request.
 */
import type { Scope } from "effect"
import { Effect, FiberSet, Queue, Semaphore } from "effect"
import type { OutboundFrame } from "./faultPlan.js"

/** WaitForProcess requests allowed at once per ordinary request slot. */
const WaitsPerRequestSlot = 64

/** A request being handled, for DumpStacks. */
export interface InFlight {
  readonly id: number
  readonly label: string
  readonly since: number
  readonly fiber: number
}

/** Requests in flight and frames waiting for a negotiated connection. */
export interface Requests {
  /**
   * Responses and notifications in completion order, written by the writer of
   * the current connection once it is negotiated. Bounded: a full queue holds
   * its handlers (and their request slots) back.
   */
  readonly outbound: Queue.Queue<OutboundFrame>
  /**
   * Messages a writer took but did not hand to its socket (a `drop-after`
   * fault closed the connection first); the next connection's writer writes
   * them first, so nothing taken is lost.
   */
  unsent: ReadonlyArray<OutboundFrame>
  /** Slots of ordinary requests: at most `maxInFlight`, whatever connection they came on. */
  readonly permits: Semaphore.Semaphore
  /** WaitForProcess lasts as long as its process, so waits have slots of their own. */
  readonly waitPermits: Semaphore.Semaphore
  /** The handlers; they outlive the connection their request came on. */
  readonly fibers: FiberSet.FiberSet
  readonly inFlight: Map<number, InFlight>
  nextKey: number
}

/** Empty request state in the current scope. */
export const make = (maxInFlight: number): Effect.Effect<Requests, never, Scope.Scope> =>
  Effect.gen(function* () {
    const slots = Math.max(1, maxInFlight)
    return {
      outbound: yield* Queue.bounded<OutboundFrame>(slots),
      unsent: [],
      permits: yield* Semaphore.make(slots),
      waitPermits: yield* Semaphore.make(slots * WaitsPerRequestSlot),
      fibers: yield* FiberSet.make(),
      inFlight: new Map(),
      nextKey: 0
    }
  })
