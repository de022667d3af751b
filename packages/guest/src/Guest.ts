/**
 * The guest: a GCS that behaves on the wire as the Linux GCS does, but runs
 * real processes on this machine instead of containers in a VM. It dials the
 * host, negotiates protocol v4, serves requests, relays stdio, reports
 * container exits, and re-dials when the connection ends.
 *
 * There is no isolation: a "container" is a working directory, an
 * environment and a command, run as the user running the guest. It is a test
 * peer and a demo, not a security boundary.
 *
 * @since 0.1.0
 */
import type { ProtocolError } from "@gcs-bridge/protocol"
import type { Address, Connection } from "@gcs-bridge/transport"
import { formatAddress, Transport, TransportError, UnixAddress } from "@gcs-bridge/transport"
import type { Scope } from "effect"
import { Cause, Duration, Effect, Layer, Schedule } from "effect"
import type { GuestOptions, ResolvedGuestOptions } from "./GuestOptions.js"
import { resolve } from "./GuestOptions.js"
import { findPython } from "./internal/ptyHelper.js"
import type { SessionEnd } from "./internal/session.js"
import * as Requests from "./internal/requests.js"
import { serveConnection } from "./internal/session.js"
import * as Uvm from "./internal/uvm.js"

/**
 * Why `serve` stopped: the host closed the connection (`"PeerClosed"`), a
 * `drop-after` fault closed it (`"Dropped"`), the host shut the UVM down
 * (`"PowerOff"`: ShutdownGraceful/Forced of the null container), or the host
 * sent a request the Linux GCS dies of (`"Crashed"`: e.g. a Create whose OCI
 * spec has no `linux` object; the reason is logged and the bridge dropped
 * without an answer).
 *
 * @since 0.1.0
 */
export type ServeEnd = SessionEnd

const retryable = (e: TransportError): boolean =>
  (e.reason === "Connect" || e.reason === "ConnectTimeout") &&
  e.code !== "EAFNOSUPPORT" &&
  e.code !== "EINVAL"

/** The machine-wide state of a guest, in the current scope. */
const makeUvm = Effect.fnUntraced(function* (options: ResolvedGuestOptions) {
  const transport = yield* Transport
  return yield* Uvm.make({
    // Stdio dials as the Linux GCS does them: a timed-out dial is retried up to 10 times, 100 ms apart.
    dial: (port) =>
      transport.connect(options.address, port, { timeout: options.stdioConnectTimeout }).pipe(
        Effect.retry({
          while: (e) => e.reason === "ConnectTimeout",
          schedule: Schedule.spaced(Duration.millis(100)),
          times: 9
        })
      ),
    python:
      options.console === "none" ? Effect.succeedNone : yield* Effect.cached(findPython(options.python)),
    defaultCwd: options.workingDirectory
  })
})

/**
 * Serves one bridge connection until it ends, with a state of its own: when
 * `serve` returns, every process it started has been killed and every stdio
 * connection closed, and `connection` is closed. Stdio ports are dialled on
 * `options.address`. Fails when the connection breaks (`TransportError`) or
 * the host sends something unreadable (`ProtocolError`: truncated or oversize
 * frame); either way the connection is closed.
 *
 * @since 0.1.0
 */
export const serve = (
  connection: Connection,
  options: GuestOptions
): Effect.Effect<ServeEnd, ProtocolError.ProtocolError | TransportError, Transport> => {
  const resolved = resolve(options)
  return Effect.scoped(
    Effect.gen(function* () {
      const uvm = yield* makeUvm(resolved)
      const requests = yield* Requests.make(resolved.maxInFlight)
      return yield* serveConnection(uvm, requests, connection, resolved)
    })
  )
}

/**
 * Dials the host's bridge port until `connectTimeout` has passed (by default
 * forever), pausing `retryInterval` after the first failure and twice as long
 * after each further one, up to `maxRetryInterval`.
 */
const dialBridge = (
  transport: Transport["Service"],
  options: ResolvedGuestOptions
): Effect.Effect<Connection, TransportError, Scope.Scope> => {
  const where = formatAddress(options.address)
  return transport.connect(options.address, options.port, { timeout: options.connectTimeout }).pipe(
    Effect.retry({
      while: retryable,
      schedule: Schedule.min([
        Schedule.exponential(options.retryInterval),
        Schedule.spaced(options.maxRetryInterval)
      ])
    }),
    Effect.timeoutOrElse({
      duration: options.connectTimeout,
      orElse: () =>
        Effect.fail(
          new TransportError({
            reason: "ConnectTimeout",
            address: where,
            port: options.port,
            message: `no host accepted the bridge connection at ${where} port ${options.port} within ${Duration.format(options.connectTimeout)}`
          })
        )
    })
  )
}

/**
 * Runs the guest: dials the host at `options.address` (bridge port
 * `0x40000000` unless `options.port`) until one accepts — by default forever,
 * with a capped exponential backoff (100 ms doubling up to 1 s) — serves the
 * connection, and when it ends sleeps `redialDelay` (100 ms) and dials again,
 * like the Linux GCS — unless `once`, or the host shut the UVM down.
 * Containers, processes and requests survive a re-dial: a request still being
 * handled when its connection ends (a WaitForProcess on a live process, say)
 * is answered on the next connection, after its NegotiateProtocol answer,
 * together with exit notifications and answers that could not be written.
 * Interrupting `run` ends every request, kills every process and closes every
 * socket.
 *
 * Fails when the host cannot be reached within a finite `connectTimeout` (or
 * the address cannot be dialled at all), and, with `once`, when the
 * connection ended with an error. Errors of a connection are otherwise
 * logged, and the guest re-dials.
 *
 * @since 0.1.0
 */
export const run = (
  options: GuestOptions
): Effect.Effect<void, TransportError | ProtocolError.ProtocolError, Transport> => {
  const resolved = resolve(options)
  return Effect.scoped(
    Effect.gen(function* () {
      const transport = yield* Transport
      const uvm = yield* makeUvm(resolved)
      // Requests outlive their connection: what they answer later goes out on the next one.
      const requests = yield* Requests.make(resolved.maxInFlight)
      // A broken or unreadable connection is logged and re-dialled (with
      // `once` it is the result); failing to reach the host at all is fatal.
      const session = Effect.scoped(
        Effect.flatMap(dialBridge(transport, resolved), (connection) =>
          serveConnection(uvm, requests, connection, resolved).pipe(
            Effect.tapError((e) =>
              Effect.logWarning(`gcs-bridge guest: ${connection.description}: ${e.message}`)
            ),
            Effect.catch((e) => (resolved.once ? Effect.fail(e) : Effect.succeed("Failed" as const)))
          )
        )
      )
      for (;;) {
        const end = yield* session
        if (resolved.once || end === "PowerOff") return
        yield* Effect.sleep(resolved.redialDelay)
      }
    })
  )
}

/**
 * {@link run} in the background of the layer's scope: the guest starts when
 * the layer is built and is stopped (every process killed, every socket
 * closed) when its scope closes. A failure of `run` is logged, not raised.
 * For tests and for embedding a guest next to a host in one process.
 *
 * @since 0.1.0
 */
export const layer = (options: GuestOptions): Layer.Layer<never, never, Transport> =>
  Layer.effectDiscard(
    Effect.forkScoped(
      run(options).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.void
            : Effect.logError(`gcs-bridge guest at ${formatAddress(options.address)} stopped`, cause)
        )
      )
    )
  )

/**
 * The address a guest uses to reach a host that listens on `hostAddress`:
 * a host listening on hybrid vsock (`hybrid://P`) is reached through the
 * Unix sockets `P_<port>` (`unix://P`); any other address is the same on both
 * sides. Convenient for embedding a guest next to a host.
 *
 * @since 0.1.0
 */
export const addressForHost = (hostAddress: Address): Address =>
  hostAddress._tag === "HybridAddress" ? new UnixAddress({ path: hostAddress.path }) : hostAddress
