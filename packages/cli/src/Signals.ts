/**
 * The signals `gcsctl` receives. `run` forwards SIGINT and SIGTERM to the
 * remote process instead of dying; the other commands stop cleanly (closing
 * their scopes) on them. As a service so tests can send signals in-process.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Stream } from "effect"
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
export class Signals extends Context.Tag("@gcs-bridge/cli/Signals")<Signals, SignalsService>() {
  /**
   * The operating system's signals, through `process.on`.
   *
   * @since 0.1.0
   */
  static readonly layerNode: Layer.Layer<Signals> = Layer.succeed(Signals, {
    receive: (signals) =>
      Stream.async<HandledSignal>((emit) => {
        const handlers = signals.map((signal) => {
          const handler = () => void emit.single(signal)
          process.on(signal, handler)
          return [signal, handler] as const
        })
        return Effect.sync(() => {
          for (const [signal, handler] of handlers) process.off(signal, handler)
        })
      })
  })
}

/**
 * Runs `effect` until SIGINT or SIGTERM arrives; then interrupts it (its
 * scopes close: sockets, guest processes, temporary directories) and fails
 * with `Interrupted`. For commands that have nothing to forward a signal to.
 *
 * @since 0.1.0
 */
export const stopOnSignals = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | Interrupted, R | Signals> =>
  Effect.flatMap(Signals, (signals) =>
    Effect.raceFirst(
      effect,
      signals.receive(["SIGINT", "SIGTERM"]).pipe(
        Stream.runHead,
        Effect.flatMap((signal) =>
          Option.isSome(signal) ? Effect.fail(new Interrupted({ signal: signal.value })) : Effect.never
        )
      )
    )
  )
