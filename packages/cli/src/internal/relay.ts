/**
 * The live part of `gcsctl run`: the process's stdio to and from ours, the
 * local terminal, signals forwarded to the process, and the exit status.
 */
import type { CallError, Process } from "@gcs-bridge/runtime"
import type { TransportError } from "@gcs-bridge/transport"
import { Duration, Effect, Option, Ref, type Scope, Stream } from "effect"
import { Interrupted, StdioError } from "../CliError.js"
import { describeError } from "../ErrorLine.js"
import { handleSignals, type HandledSignal, signalNumber, type Signals, StopTimeout } from "../Signals.js"
import { Stdio } from "../Stdio.js"
import type { RunSpec } from "./processSpec.js"

const code = (error: TransportError) => (error.code === undefined ? {} : { code: error.code })

/** Unsigned -1: what the guest reports for a UVM process that a signal killed (Go's `ExitCode()`). */
const SignalledUvmProcess = 0xffffffff

/**
 * The exit status of `gcsctl run` for the process's exit code. Codes 0-255
 * pass through (a container process killed by signal n already reports
 * 128 + n); the UVM's "killed by a signal" (-1) becomes 128 + n when we
 * forwarded signal n, else 255, as does any code a shell cannot express.
 */
export const exitStatusOf = (code: number, forwarded: Option.Option<number>): number => {
  if (code >= 0 && code <= 255) return code
  if (code === SignalledUvmProcess && Option.isSome(forwarded)) return 128 + forwarded.value
  return 255
}

/**
 * Copies the process's stdout and stderr to ours and (with `-i`) our stdin
 * to it, puts the local terminal in raw mode and follows its size (with a
 * console), and gives the exit code once the process has exited and its
 * output is drained (`onExit` runs as soon as it exited, before that). The
 * stdin relay never fails the run: a process may exit without reading its input.
 */
export const relay = (
  process: Process,
  spec: RunSpec,
  onExit: Effect.Effect<void>
): Effect.Effect<number, CallError | TransportError | StdioError, Stdio | Scope.Scope> =>
  Effect.gen(function* () {
    const stdio = yield* Stdio
    if (spec.tty && Option.isSome(stdio.terminal)) {
      const terminal = stdio.terminal.value
      // Raw mode only when our keystrokes go to the process; otherwise Ctrl-C
      // stays a local SIGINT, which is forwarded.
      if (spec.interactive) yield* terminal.rawMode
      // The size is sent once at the start (a guest may ignore the size in
      // the exec request) and then on every change.
      yield* Effect.forkScoped(
        Stream.runForEach(Stream.concat(Stream.fromEffect(terminal.size), terminal.resizes), (size) =>
          process
            .resizeConsole(size.columns, size.rows)
            .pipe(Effect.catch((error) => Effect.logDebug(`console resize failed: ${error.message}`)))
        )
      )
    }
    const fds = stdio.descriptors ?? {}
    if (spec.interactive) {
      // From a descriptor, in the kernel where the engine can; from the Node stream on a terminal.
      const input =
        fds.in === undefined
          ? Effect.andThen(Stream.run(stdio.stdin, process.stdin), process.closeStdin)
          : process.stdinFrom(fds.in)
      yield* Effect.forkScoped(
        input.pipe(Effect.catch((error) => Effect.logDebug(`stdin relay ended: ${String(error)}`)))
      )
    }
    const output = (name: "stdout" | "stderr", fd: number | undefined) =>
      fd === undefined
        ? Stream.runForEach(process[name], name === "stdout" ? stdio.out : stdio.err)
        : Effect.asVoid(
            Effect.mapError(name === "stdout" ? process.stdoutTo(fd) : process.stderrTo(fd), (error) =>
              // Writing our descriptor failed (its reader went away): ours, as when our stream fails.
              error.reason === "Write"
                ? new StdioError({ stream: name, message: error.message, ...code(error) })
                : error
            )
          )
    // Together, so that a failed relay (a stdout whose reader went away)
    // stops the others at once rather than relaying what follows.
    const [exitCode] = yield* Effect.all(
      [
        Effect.tap(process.wait, () => onExit),
        output("stdout", fds.out),
        spec.tty ? Effect.void : output("stderr", fds.err)
      ],
      { concurrency: "unbounded" }
    )
    return exitCode
  })

/** How each forwarded signal is named for the guest's OS (Windows guests take console control events). */
const guestSignal = (os: string, signal: HandledSignal): number | "CtrlC" | "CtrlShutdown" =>
  os === "windows" ? (signal === "SIGINT" ? "CtrlC" : "CtrlShutdown") : signalNumber[signal]

/** The running process and its guest's OS, once there is one. */
export interface Started {
  readonly process: Process
  readonly os: string
}

/**
 * Runs `program` with SIGINT and SIGTERM handled: before the process has
 * started and after it exited they stop the program (`Interrupted`; its
 * scopes close). While it runs, they are forwarded to the process, and the
 * number of each delivered one is recorded in `forwarded` for `exitStatusOf`.
 * A signal the guest refuses to deliver — a Linux GCS cannot signal processes
 * in the utility VM (§11.10) — or does not answer within `StopTimeout` stops
 * the program instead, so that Ctrl-C always ends `gcsctl run`.
 */
export const forwardSignals = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  started: Ref.Ref<Option.Option<Started>>,
  forwarded: Ref.Ref<Option.Option<number>>
): Effect.Effect<A, E | Interrupted, R | Signals | Stdio> =>
  handleSignals(program, (signal) =>
    Effect.flatMap(
      Ref.get(started),
      Option.match({
        onNone: () => Effect.fail(new Interrupted({ signal })),
        onSome: ({ os, process }) =>
          process.signal(guestSignal(os, signal)).pipe(
            Effect.mapError((error) => new Interrupted({ signal, undelivered: describeError(error) })),
            Effect.timeoutOrElse({
              duration: StopTimeout,
              orElse: () =>
                Effect.fail(
                  new Interrupted({
                    signal,
                    undelivered: `the guest did not answer within ${Duration.format(StopTimeout)}`
                  })
                )
            }),
            Effect.andThen(Ref.set(forwarded, Option.some(signalNumber[signal])))
          )
      })
    )
  )
