/**
 * A process running in the guest — in a container or in the utility VM — and its stdio.
 *
 * @since 0.1.0
 */
import type { Process as Wire } from "@gcs-bridge/protocol"
import type { TransportError } from "@gcs-bridge/transport"
import type { Effect, Option, Sink, Stream } from "effect"
import type { CallError } from "./CallError.js"

/**
 * What to run: a `ProcessParameters` instance, or the same document as plain JSON (wire form: every key
 * optional). For a Linux container give `OciProcess` (an OCI runtime-spec `process`), or leave it out to
 * start the container's init process; for a UVM process or a Windows guest give `CommandArgs` /
 * `CommandLine`, `WorkingDirectory`, `Environment`. The `CreateStd…Pipe` flags decide which stdio streams are
 * relayed.
 *
 * @since 0.1.0
 */
export type ProcessParametersInput = Wire.ProcessParameters | typeof Wire.ProcessParameters.Encoded

/**
 * A Windows signal name (`CtrlC`, `CtrlBreak`, `CtrlClose`, `CtrlLogOff`, `CtrlShutdown`).
 *
 * @since 0.1.0
 */
export type WindowsSignalName = (typeof Wire.WindowsSignal)[keyof typeof Wire.WindowsSignal]

/**
 * A process started by `exec`, owned by the `Scope` it was started in. Closing that scope kills the process
 * if it is still running (bounded by the connection's `closeTimeout`) and closes its stdio.
 *
 * The guest reports the exit of a container process only after its stdout and stderr have been read to the
 * end (GCS-PROTOCOL §14.4a): read them (or leave them unrequested) before relying on `wait`.
 *
 * @since 0.1.0
 */
export interface Process {
  /** The guest's process id. */
  readonly pid: number
  /**
   * Writes to the process's stdin, waiting for the guest to connect the stream first. It does not close stdin
   * when its input ends: use `closeStdin`. Fails with `TransportError` (`Closed`) when stdin was not
   * requested or the process's scope has closed.
   */
  readonly stdin: Sink.Sink<void, Uint8Array, never, TransportError>
  /**
   * The process's stdout, with backpressure (the guest is paused while the consumer is). Single consumer. The
   * connection is closed as soon as the stream ends or its consumer stops. Empty when stdout was not
   * requested; fails with `TransportError` (`Closed`) when the scope closes before the guest ever connected
   * it (stdio denied by policy).
   */
  readonly stdout: Stream.Stream<Uint8Array, TransportError>
  /** The process's stderr, like `stdout`. */
  readonly stderr: Stream.Stream<Uint8Array, TransportError>
  /**
   * Half-closes stdin once everything written before has been sent, so the process reads end-of-file. Runs at
   * most once; later calls get the first result. Does nothing when stdin was not requested.
   */
  readonly closeStdin: Effect.Effect<void, TransportError>
  /**
   * Waits for the process to exit and gives its exit code (an unsigned 32-bit value: `4294967295` is -1, a
   * UVM process killed by a signal). As in Go, a guest answer "process not found" (`0x80070490`) counts as an
   * exit with code 0. Fails with `BridgeClosed` if the bridge dies first.
   */
  readonly wait: Effect.Effect<number, CallError>
  /** The exit code once the process has exited, `None` while it runs; fails like `wait`. */
  readonly exitCode: Effect.Effect<Option.Option<number>, CallError>
  /**
   * Sends a signal: a number for a Linux guest (`0` means SIGKILL to the Linux GCS), a name for a Windows
   * guest. `true` when delivered, `false` when the process was already gone (`0x80070490`). Does not wait for
   * the process to exit.
   */
  readonly signal: (signal: number | WindowsSignalName) => Effect.Effect<boolean, CallError>
  /** Forcefully terminates the process (SignalProcess without options); result as `signal`. */
  readonly kill: Effect.Effect<boolean, CallError>
  /** Resizes the process's console (a process with a terminal, in a container). */
  readonly resizeConsole: (width: number, height: number) => Effect.Effect<void, CallError>
}
