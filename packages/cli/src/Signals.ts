/**
 * The signals `gcsctl` receives. `run` forwards SIGINT and SIGTERM to the
 * remote process instead of dying; the other commands stop cleanly (closing
 * their scopes) on them. As a service so tests can send signals in-process.
 *
 * @since 0.1.0
 */
import { Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Queue, Stream } from "effect"
import { Interrupted } from "./CliError.js"
import { Stdio } from "./Stdio.js"

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
 * How long a signal may keep `gcsctl` waiting on the guest: for the answer to
 * a forwarded signal, and then for the scopes to close (killing what it ran,
 * shutting a container down). A guest that does not answer in time is left
 * as it is.
 *
 * @since 0.1.0
 */
export const StopTimeout: Duration.Duration = Duration.seconds(5)

/** A signal whose handling takes longer than this is followed by a line saying how to end at once. */
const SlowSignalNotice = Duration.seconds(1)

/**
 * Runs `effect` with SIGINT and SIGTERM given to `handle` rather than killing
 * the process. When `handle` fails, `effect` is interrupted (its scopes
 * close: sockets, guest processes, temporary directories) and this fails so;
 * that wait, like `handle`'s, is bounded by `StopTimeout` after the signal.
 * A signal that arrives while another is still being handled or while
 * `effect` is stopping ends everything at once (`Interrupted` with `forced`),
 * leaving what is still closing behind: signals always stop gcsctl.
 *
 * @since 0.1.0
 */
export const handleSignals = <A, E, R, E2, R2>(
  effect: Effect.Effect<A, E, R>,
  handle: (signal: HandledSignal) => Effect.Effect<void, E2, R2>
): Effect.Effect<A, E | E2 | Interrupted, R | R2 | Signals | Stdio> =>
  Effect.scoped(
    Effect.gen(function* () {
      const signals = yield* Signals
      const stdio = yield* Stdio
      const outcome = yield* Deferred.make<A, E | E2 | Interrupted>()
      let busy = false
      let stopping = false
      // Detached: a stop that outlives its bound must not hold this fiber.
      const main = yield* Effect.forkDetach(effect)
      yield* Effect.forkScoped(
        Effect.flatMap(Fiber.await(main), (exit) => (stopping ? Effect.void : Deferred.done(outcome, exit)))
      )
      const stop = (reason: E2, since: number) =>
        Effect.gen(function* () {
          stopping = true
          const left = Duration.toMillis(StopTimeout) - ((yield* Clock.currentTimeMillis) - since)
          yield* Effect.timeoutOption(Fiber.interrupt(main), Math.max(0, left))
          yield* Deferred.fail(outcome, reason)
        })
      const onSignal = (signal: HandledSignal) =>
        Effect.gen(function* () {
          if (busy || stopping)
            return yield* Deferred.fail(outcome, new Interrupted({ signal, forced: true }))
          busy = true
          const since = yield* Clock.currentTimeMillis
          const notice = yield* Effect.forkScoped(
            Effect.andThen(
              Effect.sleep(SlowSignalNotice),
              Effect.ignore(
                stdio.err(
                  `gcsctl: waiting for the guest after ${signal} (at most ${Duration.format(StopTimeout)}); ` +
                    `send ${signal} again to stop at once\n`
                )
              )
            )
          )
          yield* Effect.forkScoped(
            handle(signal).pipe(
              Effect.matchEffect({
                onSuccess: () => Effect.sync(() => void (busy = false)),
                onFailure: (reason) => stop(reason, since)
              }),
              Effect.ensuring(Fiber.interrupt(notice))
            )
          )
        })
      yield* Effect.forkScoped(Stream.runForEach(signals.receive(["SIGINT", "SIGTERM"]), onSignal))
      return yield* Deferred.await(outcome)
    })
  )

/**
 * Runs `effect` until SIGINT or SIGTERM arrives, then stops it and fails with
 * `Interrupted`. For commands that have nothing to forward a signal to.
 *
 * @since 0.1.0
 */
export const stopOnSignals = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | Interrupted, R | Signals | Stdio> =>
  handleSignals(effect, (signal) => Effect.fail(new Interrupted({ signal })))
