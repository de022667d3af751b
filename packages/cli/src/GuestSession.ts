/**
 * How every guest-facing command gets its `GuestConnection`: listen on the
 * address the user gave (`--guest`) and wait for the guest, or start the
 * embedded guest and listen where it dials.
 *
 * @since 0.1.0
 */
import { FrameDecoder, MessageType } from "@gcs-bridge/protocol"
import {
  type Address,
  type Connection,
  formatAddress,
  Transport,
  type TransportError
} from "@gcs-bridge/transport"
import {
  type ConnectError,
  GuestConnection,
  type GuestConnectionConfig,
  type GuestConnectionService
} from "@gcs-bridge/runtime"
import { Duration, Effect, Fiber, Option, Scope, Stream } from "effect"
import { EmbeddedGuestError } from "./CliError.js"
import { describeError, type ErrorContext, reportFailures } from "./ErrorLine.js"
import { ExitCode, type ExitStatus } from "./ExitStatus.js"
import { startEmbeddedGuest } from "./internal/embeddedGuest.js"
import { type Signals, StopTimeout, stopOnSignals } from "./Signals.js"
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
  /** How long a process's output may still come after it exited (`--copy-after-exit`); the runtime's default when absent. */
  readonly copyAfterExit?: Option.Option<Duration.Duration>
  /** How long a dropped bridge may take to be re-established (`--reconnect`); none: a dropped bridge ends the session. */
  readonly reconnect?: Option.Option<Duration.Duration>
}

/**
 * A negotiated guest and the `Capabilities` object of its NegotiateProtocol
 * response exactly as it was received (keys in the guest's order, nothing
 * added), when that was asked for.
 *
 * @since 0.1.0
 */
export interface GuestSession {
  readonly connection: GuestConnectionService
  readonly receivedCapabilities: Option.Option<unknown>
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

/** How long a person at a terminal waits in silence before being told what for. */
const NoticeDelay = Duration.seconds(2)

/**
 * Keeps the first NegotiateProtocol response's payload as it passes (frames
 * are read with the bridge's own size limit; once it is found, the bytes
 * pass untouched), so `caps` prints what the guest sent, not the defaults of
 * a decoded Schema.
 */
const tapNegotiation = (connection: Connection) => {
  const reader = new FrameDecoder.FrameReader()
  const type = MessageType.responseType(MessageType.Proc.NegotiateProtocol)
  let payload: Uint8Array | undefined
  const look = (chunk: Uint8Array) => {
    if (payload !== undefined || reader.error !== undefined) return
    payload = reader
      .push(chunk)
      .find((frame) => frame.type === type)
      ?.payload.slice()
  }
  const stream = Stream.tap(connection.stream, (chunk) => Effect.sync(() => look(chunk)))
  const forEach = (onChunk: (chunk: Uint8Array) => void) =>
    connection.forEach((chunk) => (look(chunk), onChunk(chunk)))
  const capabilities = (): Option.Option<unknown> => {
    if (payload === undefined) return Option.none()
    try {
      const body = JSON.parse(new TextDecoder().decode(payload)) as { readonly Capabilities?: unknown }
      return Option.fromNullishOr(body.Capabilities)
    } catch {
      return Option.none()
    }
  }
  return { connection: { ...connection, stream, forEach }, capabilities }
}

/**
 * Accepts the guest on the bridge port as `GuestConnection.make` does (the
 * listener closes once it is in), then negotiates over the connection.
 */
const connect = (
  address: Address,
  options: SessionOptions,
  captureCapabilities: boolean
): Effect.Effect<GuestSession, ConnectError | TransportError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const outer = yield* Effect.scope
    const accepted = yield* Effect.scoped(
      Effect.flatMap(transport.listen(address, MessageType.LinuxGcsVsockPort), (listener) =>
        Scope.provide(listener.accept({ timeout: options.acceptTimeout }), outer)
      )
    )
    const tapped = captureCapabilities ? tapNegotiation(accepted) : undefined
    const config: GuestConnectionConfig = {
      address,
      connectTimeout: options.acceptTimeout,
      stdioAcceptTimeout: options.acceptTimeout,
      // What a closing scope may wait for in the guest: a signal's stop is
      // bounded by StopTimeout as a whole, so no guest call waits longer.
      closeTimeout: StopTimeout,
      copyAfterExitTimeout: Option.getOrUndefined(options.copyAfterExit ?? Option.none()),
      reconnect: Option.getOrUndefined(options.reconnect ?? Option.none())
    }
    const connection = yield* GuestConnection.fromConnection(tapped?.connection ?? accepted, config)
    return { connection, receivedCapabilities: tapped?.capabilities() ?? Option.none() }
  })

/**
 * `effect`, and on a terminal (stderr is one) a line saying what it waits
 * for once it took longer than NoticeDelay: a silent two-minute wait looks hung.
 */
const noticeIfSlow = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  text: string
): Effect.Effect<A, E, R | Stdio> =>
  Effect.gen(function* () {
    const stdio = yield* Stdio
    if (stdio.stderrIsTerminal !== true) return yield* effect
    const notice = yield* Effect.forkChild(
      Effect.andThen(Effect.sleep(NoticeDelay), Effect.ignore(stdio.err(`gcsctl: ${text}\n`)))
    )
    return yield* Effect.ensuring(effect, Fiber.interrupt(notice))
  })

/**
 * A negotiated connection to the guest, for as long as the scope lives. With
 * the embedded guest, a guest that fails before it is connected fails this
 * at once (rather than after the accept timeout). With `captureCapabilities`,
 * the capabilities as received come with it.
 *
 * @since 0.1.0
 */
export const openGuest = (
  options: SessionOptions,
  captureCapabilities = false
): Effect.Effect<
  GuestSession,
  ConnectError | TransportError | EmbeddedGuestError,
  Transport | Stdio | Scope.Scope
> =>
  Option.match(options.guest, {
    onSome: (address) =>
      noticeIfSlow(
        connect(address, options, captureCapabilities),
        `waiting up to ${Duration.format(options.acceptTimeout)} for the guest to connect to ${formatAddress(address)} (port 0x40000000); Ctrl-C stops`
      ),
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
        return yield* Effect.raceFirst(
          connect(embedded.hostAddress, options, captureCapabilities),
          guestStopped
        )
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
  ask: (session: GuestSession) => Effect.Effect<string, E>,
  captureCapabilities = false
): Effect.Effect<void, never, Transport | Stdio | Signals | ExitStatus> =>
  Effect.scoped(
    Effect.gen(function* () {
      const text = yield* ask(yield* openGuest(options, captureCapabilities))
      yield* Stdio.use((stdio) => stdio.out(text === "" || text.endsWith("\n") ? text : `${text}\n`))
    })
  ).pipe(stopOnSignals, reportFailures(command, ExitCode.Failure, errorContext(options)))
