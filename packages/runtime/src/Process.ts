/** A process running in the guest — in a container or in the utility VM — and its stdio. @since 0.1.0 */
import type { Process as Wire } from "@gcs-bridge/protocol"
import type { TransportError } from "@gcs-bridge/transport"
import type { Effect, Option, Sink, Stream } from "effect"
import type { CallError } from "./Errors.js"

/** What to run: a `ProcessParameters`, or the same document as plain JSON (see the README). @since 0.1.0 */
export type ProcessParametersInput = Wire.ProcessParameters | typeof Wire.ProcessParameters.Encoded

/** A Windows signal name (`CtrlC`, `CtrlBreak`, `CtrlClose`, `CtrlLogOff`, `CtrlShutdown`). @since 0.1.0 */
export type WindowsSignalName = (typeof Wire.WindowsSignal)[keyof typeof Wire.WindowsSignal]

/** A process in a `Scope` that kills it (see `isSignalRefused`) and closes its stdio when it closes. @since 0.1.0 */
export interface Process {
  readonly pid: number
  /** Writes stdin once the guest connected it, never half-closing; fails `Closed` if not requested or closed. */
  readonly stdin: Sink.Sink<void, Uint8Array, never, TransportError>
  /** Stdout with backpressure, single consumer; empty when not requested; `Closed` if never connected. */
  readonly stdout: Stream.Stream<Uint8Array, TransportError>
  /** Stderr, like `stdout`. */
  readonly stderr: Stream.Stream<Uint8Array, TransportError>
  /**
   * Relays stdout into `fd`, a descriptor you opened and keep (a pipe, FIFO, file, terminal), to its end, and gives
   * the byte count: instead of consuming `stdout`, not besides it. With the native engine on Linux the bytes move
   * inside the kernel (splice) and a full `fd` holds the guest back; elsewhere chunk by chunk. A failure writing
   * `fd` is a `Write` error. 0 when stdout was not requested.
   */
  readonly stdoutTo: (fd: number) => Effect.Effect<number, TransportError>
  /** Stderr into `fd`, like `stdoutTo`. */
  readonly stderrTo: (fd: number) => Effect.Effect<number, TransportError>
  /**
   * Sends what `fd`, a descriptor you opened and keep (a FIFO, pipe, file), holds up to its end into stdin, then
   * half-closes stdin (`closeStdin`), and gives the byte count: instead of writing `stdin`, not besides it (writes
   * are refused until it ends). With the native engine on Linux the bytes move inside the kernel (splice) and an
   * empty FIFO is waited for; elsewhere chunk by chunk. A failure reading `fd` is a `Read` error; `Closed` when
   * stdin was not requested.
   */
  readonly stdinFrom: (fd: number) => Effect.Effect<number, TransportError>
  /** Half-closes stdin after what was written; runs once, later calls share its result. */
  readonly closeStdin: Effect.Effect<void, TransportError>
  /** The exit code (unsigned 32-bit); a guest answer "not found" (`0x80070490`) counts as 0, as in Go. */
  readonly wait: Effect.Effect<number, CallError>
  /** The exit code once exited, `None` while running. */
  readonly exitCode: Effect.Effect<Option.Option<number>, CallError>
  /** A number for Linux (`0` is SIGKILL), a name for Windows; `false` when the process was already gone. */
  readonly signal: (signal: number | WindowsSignalName) => Effect.Effect<boolean, CallError>
  /** Forcefully terminates the process (SignalProcess without options); result as `signal`. */
  readonly kill: Effect.Effect<boolean, CallError>
  /** Resizes the console of a process with a terminal. */
  readonly resizeConsole: (width: number, height: number) => Effect.Effect<void, CallError>
}
