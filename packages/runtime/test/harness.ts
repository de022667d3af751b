/**
 * Wiring for the runtime's tests: a host and a fake guest over one transport
 * instance, with the host side's listeners and connections counted.
 */
import { MessageType } from "@gcs-bridge/protocol"
import type { Address, Connection, TransportService } from "@gcs-bridge/transport"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Fiber, Logger, Metric } from "effect"
import type { Scope } from "effect"
import type { GuestConnectionConfig, GuestConnectionService } from "../src/index.js"
import { GuestConnection } from "../src/index.js"
import { type Counts, counting, makeCounts } from "./CountingTransport.js"
import * as FakeGuest from "./FakeGuest.js"

let addressCounter = 0

/** A fresh in-memory address. */
export const memoryAddress = (): MemoryAddress =>
  new MemoryAddress({ name: `runtime-test-${++addressCounter}` })

/** Host and guest ends of a bridge connection, the host end from a counted transport. */
export interface Wired {
  readonly transport: TransportService
  readonly hostTransport: TransportService
  readonly counts: Counts
  readonly address: Address
}

/** The test's transport (shared by host and guest) and a counted view of it for the host. */
export const wire = (address: Address = memoryAddress()): Effect.Effect<Wired, never, Transport> =>
  Effect.map(Transport, (transport) => {
    const counts = makeCounts()
    return { transport, hostTransport: counting(transport, counts), counts, address }
  })

/** A connected pair on the bridge port: the host end (counted) and a fake guest on the other end. */
export const connectPair = (
  wired: Wired
): Effect.Effect<{ readonly host: Connection; readonly guest: FakeGuest.FakeGuest }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const listener = yield* Effect.orDie(
      wired.hostTransport.listen(wired.address, MessageType.LinuxGcsVsockPort)
    )
    const guestConnection = yield* Effect.orDie(
      wired.transport.connect(wired.address, MessageType.LinuxGcsVsockPort)
    )
    const host = yield* Effect.orDie(listener.accept())
    const guest = yield* FakeGuest.attach(guestConnection)
    return { host, guest }
  })

/**
 * A negotiated `GuestConnection` over a fresh pair, built with `fromConnection`
 * in the current scope, and the fake guest (negotiation already answered).
 */
export const connected = (
  wired: Wired,
  config: Partial<GuestConnectionConfig> = {},
  negotiateResponse?: Parameters<typeof FakeGuest.negotiate>[1]
): Effect.Effect<
  { readonly gc: GuestConnectionService; readonly guest: FakeGuest.FakeGuest; readonly host: Connection },
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const { guest, host } = yield* connectPair(wired)
    const fiber = yield* Effect.forkChild(
      GuestConnection.fromConnection(host, { address: wired.address, ...config }).pipe(
        Effect.provideService(Transport, wired.hostTransport)
      )
    )
    yield* FakeGuest.negotiate(guest, negotiateResponse)
    const gc = yield* Effect.orDie(Fiber.join(fiber))
    return { gc, guest, host }
  })

/** Counts the fibers started by effects it `track`s (and their children) that are still running. */
export interface Tracker {
  readonly track: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly live: Effect.Effect<number>
}

/**
 * A fresh tracker. Effect 4 has no `Supervisor.track`; every fiber reports its
 * start and end to the `FiberRuntimeMetrics` service of its context, which
 * forked fibers inherit.
 */
export const makeTracker = (): Tracker => {
  let live = 0
  const service: Metric.FiberRuntimeMetricsService = {
    recordFiberStart: () => {
      live++
    },
    recordFiberEnd: () => {
      live--
    }
  }
  return {
    track: (effect) => Effect.provideService(effect, Metric.FiberRuntimeMetrics, service),
    live: Effect.sync(() => live)
  }
}

/** Every log line at warning level and above, as text. */
export const captureWarnings = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    if (logLevel === "Warn" || logLevel === "Error")
      lines.push(Array.isArray(message) ? message.join(" ") : String(message))
  })
  return { lines, layer: Logger.layer([logger]) }
}
