/**
 * How every guest-facing command gets its `GuestConnection`: listen on the
 * address the user gave (`--guest`) and wait for the guest, or start the
 * embedded guest and listen where it dials.
 *
 * @since 0.1.0
 */
import { type Address, formatAddress, type Transport } from "@gcs-bridge/transport"
import { type ConnectError, GuestConnection, type GuestConnectionService } from "@gcs-bridge/runtime"
import { Duration, Effect, Fiber, Option, type Scope } from "effect"
import { EmbeddedGuestError } from "./CliError.js"
import { describeError, type ErrorContext, reportFailures } from "./ErrorLine.js"
import { ExitCode, type ExitStatus } from "./ExitStatus.js"
import { startEmbeddedGuest } from "./internal/embeddedGuest.js"
import { type Signals, stopOnSignals } from "./Signals.js"
import { Stdio } from "./Stdio.js"

/**
 * Where the guest is and how long to wait for it.
 *
 * @since 0.1.0
 */
export interface SessionOptions {
  /** The address to listen on; none means the embedded guest. */
  readonly guest: Option.Option<Address>
  /** Deadline for the guest to connect and negotiate, and for each stdio stream to connect. */
  readonly acceptTimeout: Duration.Duration
}

/**
 * What error lines say about the guest of these options.
 *
 * @since 0.1.0
 */
export const errorContext = (options: SessionOptions): ErrorContext => ({
  guest: Option.match(options.guest, {
    onNone: () => "embedded guest",
    onSome: (address) => `guest at ${formatAddress(address)}`
  }),
  acceptTimeout: Duration.format(options.acceptTimeout)
})

const connect = (address: Address, options: SessionOptions) =>
  GuestConnection.make({
    address,
    connectTimeout: options.acceptTimeout,
    stdioAcceptTimeout: options.acceptTimeout
  })

/**
 * A negotiated connection to the guest, for as long as the scope lives. With
 * the embedded guest, a guest that fails before it is connected fails this
 * at once (rather than after the accept timeout).
 *
 * @since 0.1.0
 */
export const openGuest = (
  options: SessionOptions
): Effect.Effect<GuestConnectionService, ConnectError | EmbeddedGuestError, Transport | Scope.Scope> =>
  Option.match(options.guest, {
    onSome: (address) => connect(address, options),
    onNone: () =>
      Effect.gen(function* () {
        const embedded = yield* startEmbeddedGuest
        const guestStopped = Fiber.join(embedded.guest).pipe(
          Effect.matchEffect({
            onFailure: (error) =>
              Effect.fail(
                new EmbeddedGuestError({ message: `the embedded guest failed: ${describeError(error)}` })
              ),
            onSuccess: () =>
              Effect.fail(
                new EmbeddedGuestError({ message: "the embedded guest stopped before it connected" })
              )
          })
        )
        return yield* Effect.raceFirst(connect(embedded.hostAddress, options), guestStopped)
      })
  })

/**
 * The body of a command that asks the guest one thing: connects, prints what
 * `ask` gives as lines on stdout, and stops on SIGINT or SIGTERM; a failure
 * is the command's line on stderr and status 1.
 *
 * @since 0.1.0
 */
export const withGuest = <E>(
  command: string,
  options: SessionOptions,
  ask: (connection: GuestConnectionService) => Effect.Effect<string, E>
): Effect.Effect<void, never, Transport | Stdio | Signals | ExitStatus> =>
  Effect.scoped(
    Effect.gen(function* () {
      const text = yield* ask(yield* openGuest(options))
      yield* Stdio.use((stdio) => stdio.out(text === "" || text.endsWith("\n") ? text : `${text}\n`))
    })
  ).pipe(stopOnSignals, reportFailures(command, ExitCode.Failure, errorContext(options)))
