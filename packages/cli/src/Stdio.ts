/**
 * The local end of `gcsctl`: its stdin, stdout and stderr, and the terminal
 * when there is one. Commands reach them only through this service, so the
 * whole CLI runs in-process in tests with captured output.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Queue, type Scope, Stream } from "effect"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { isatty } from "node:tty"
import { StdioError } from "./CliError.js"

/**
 * Columns and rows of a terminal.
 *
 * @since 0.1.0
 */
export interface TerminalSize {
  readonly columns: number
  readonly rows: number
}

/**
 * The local terminal, present when both stdin and stdout are one.
 *
 * @since 0.1.0
 */
export interface LocalTerminal {
  /** The current size of the terminal. */
  readonly size: Effect.Effect<TerminalSize>
  /** Every size change (SIGWINCH), as it happens. */
  readonly resizes: Stream.Stream<TerminalSize>
  /** Raw mode on stdin until the scope closes, so keys reach the remote console unprocessed. */
  readonly rawMode: Effect.Effect<void, never, Scope.Scope>
}

/**
 * The local standard streams.
 *
 * @since 0.1.0
 */
export interface StdioService {
  /** The bytes of stdin; read only by a command that needs them (single consumer). */
  readonly stdin: Stream.Stream<Uint8Array, StdioError>
  /** Writes to stdout and waits until the bytes are handed to the operating system. */
  readonly out: (chunk: Uint8Array | string) => Effect.Effect<void, StdioError>
  /** Writes to stderr, as `out`. */
  readonly err: (chunk: Uint8Array | string) => Effect.Effect<void, StdioError>
  /** The terminal, when stdin and stdout are one. */
  readonly terminal: Option.Option<LocalTerminal>
  /** Whether stderr is a terminal: a person is watching, so a long wait is announced there. */
  readonly stderrIsTerminal?: boolean
  /**
   * Our stdin, stdout and stderr as descriptors, for a relay the kernel can do (`Process.stdoutTo`, `stdinFrom`):
   * each present on Linux when it is not a terminal (a terminal keeps its Node stream: raw mode, resizes).
   * Absent in tests; `out` / `err` / `stdin` then serve.
   */
  readonly descriptors?: { readonly in?: number; readonly out?: number; readonly err?: number }
}

/**
 * The local standard streams as a service.
 *
 * @since 0.1.0
 */
export class Stdio extends Context.Service<Stdio, StdioService>()("@gcs-bridge/cli/Stdio") {
  /**
   * The process's own stdin, stdout, stderr and tty.
   *
   * @since 0.1.0
   */
  static readonly layerNode: Layer.Layer<Stdio> = Layer.sync(Stdio, () => makeNode())
}

const errorFields = (error: unknown): { readonly message: string; readonly code?: string } => {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === undefined ? { message: error.message } : { message: error.message, code }
  }
  return { message: String(error) }
}

const writer =
  (name: "stdout" | "stderr", stream: () => NodeJS.WriteStream) =>
  (chunk: Uint8Array | string): Effect.Effect<void, StdioError> =>
    // Waiting for the write callback (not only for 'drain') means the bytes
    // have reached the OS when this completes, so exiting right after loses
    // nothing, even when the stream is an asynchronous pipe.
    Effect.callback<void, StdioError>((resume) => {
      stream().write(chunk, (error) =>
        resume(
          error == null ? Effect.void : Effect.fail(new StdioError({ stream: name, ...errorFields(error) }))
        )
      )
    })

const terminalSize = (): TerminalSize => ({
  columns: process.stdout.columns ?? 80,
  rows: process.stdout.rows ?? 24
})

// Checked on the descriptors, not through process.stdin / stdout: touching them would open them as Node streams.
// A closed one is kept: relaying through it fails with a typed EBADF, as writing its stream would.
const descriptors = () => ({
  ...(isatty(0) ? {} : { in: 0 }),
  ...(isatty(1) ? {} : { out: 1 }),
  ...(isatty(2) ? {} : { err: 2 })
})

const makeNode = (): StdioService => {
  // A failed write is reported to its callback (and so to the writer as a
  // StdioError); without a listener the same error would also be thrown as
  // an unhandled 'error' event, with a stack trace, when a pipe closes.
  process.stdout.on("error", () => undefined)
  process.stderr.on("error", () => undefined)
  return {
    stdin: NodeStream.fromReadable({
      evaluate: () => process.stdin,
      onError: (error) => new StdioError({ stream: "stdin", ...errorFields(error) }),
      closeOnDone: false
    }),
    out: writer("stdout", () => process.stdout),
    err: writer("stderr", () => process.stderr),
    stderrIsTerminal: isatty(2),
    descriptors: process.platform === "linux" ? descriptors() : {},
    terminal:
      // isatty on the descriptors, not process.stdin.isTTY: touching
      // process.stdin would open it even for commands that never read it.
      isatty(0) && isatty(1)
        ? Option.some<LocalTerminal>({
            size: Effect.sync(terminalSize),
            resizes: Stream.callback<TerminalSize>((queue) => {
              const onResize = () => void Queue.offerUnsafe(queue, terminalSize())
              return Effect.acquireRelease(
                Effect.sync(() => process.stdout.on("resize", onResize)),
                () => Effect.sync(() => process.stdout.off("resize", onResize))
              )
            }),
            rawMode: Effect.acquireRelease(
              Effect.sync(() => process.stdin.setRawMode(true)),
              () => Effect.sync(() => process.stdin.setRawMode(false))
            ).pipe(Effect.asVoid)
          })
        : Option.none()
  }
}
