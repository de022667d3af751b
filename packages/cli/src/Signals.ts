/**
 * The signals `gcsctl` receives. `run` forwards SIGINT and SIGTERM to the
 * remote process instead of dying; the other commands stop cleanly (closing
 * their scopes) on them. As a service so tests can send signals in-process.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Queue, Stream } from "effect"
import { Interrupted } from "./CliError.js"

/**
 * The signals a command may ask for.
 *
 * @since 0.1.0
 */
export type HandledSignal = "SIGINT" | "SIGTERM" | "SIGHUP"

/**
 * Signal numbers on Linux (also what a Linux guest expects in SignalProcess),
 * used for the `128 + n` exit status convention.
 *
 * @since 0.1.0
 */
export const signalNumber: Record<HandledSignal, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }

/**
 * @since 0.1.0
 */
export interface SignalsService {
  /**
   * The given signals as they arrive. While the stream runs, they no longer
   * kill the process: the subscriber decides what they mean.
   */
  readonly receive: (signals: ReadonlyArray<HandledSignal>) => Stream.Stream<HandledSignal>
}

/**
 * Signals delivered to this process.
 *
 * @since 0.1.0
 */
export class Signals extends Context.Service<Signals, SignalsService>()("@gcs-bridge/cli/Signals") {
  /**
   * The operating system's signals, through `process.on`.
   *
   * @since 0.1.0
   */
  static readonly layerNode: Layer.Layer<Signals> = Layer.succeed(Signals, {
    receive: (signals) =>
      Stream.callback<HandledSignal>((queue) =>
        Effect.acquireRelease(
          Effect.sync(() =>
            signals.map((signal) => {
              const handler = () => void Queue.offerUnsafe(queue, signal)
              process.on(signal, handler)
              return () => void process.off(signal, handler)
            })
          ),
          (removers) => Effect.sync(() => removers.forEach((remove) => remove()))
        )
      )
  })
}

/**
 * Runs `effect` with SIGINT and SIGTERM given to `handle` rather than killing
 * the process. When `handle` fails, `effect` is interrupted (its scopes
 * close: sockets, guest processes, temporary directories) and this fails so.
 *
 * @since 0.1.0
 */
export const handleSignals = <A, E, R, E2, R2>(
  effect: Effect.Effect<A, E, R>,
  handle: (signal: HandledSignal) => Effect.Effect<void, E2, R2>
): Effect.Effect<A, E | E2, R | R2 | Signals> =>
  Signals.use((signals) =>
    Effect.raceFirst(
      effect,
      signals.receive(["SIGINT", "SIGTERM"]).pipe(Stream.runForEach(handle), Effect.andThen(Effect.never))
    )
  )

/**
 * Runs `effect` until SIGINT or SIGTERM arrives, then stops it and fails with
 * `Interrupted`. For commands that have nothing to forward a signal to.
 *
 * @since 0.1.0
 */
export const stopOnSignals = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | Interrupted, R | Signals> =>
  handleSignals(effect, (signal) => Effect.fail(new Interrupted({ signal })))
