/**
 * Runs `gcsctl` in-process: stdin from given bytes, stdout and stderr
 * captured, signals sent by the test, the Node platform services for effect/cli.
 */
import { NodeServices } from "@effect/platform-node"
import { Effect, Layer, Option, PubSub, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { statSync, readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Transport } from "@gcs-bridge/transport"
import { runCli } from "../src/Cli.js"
import { StdioError } from "../src/CliError.js"
import type { HandledSignal } from "../src/Signals.js"
import { Signals } from "../src/Signals.js"
import { Stdio } from "../src/Stdio.js"

/** What an in-process invocation produced. */
export interface Outcome {
  readonly status: number
  readonly stdout: string
  /** Stderr without gcsctl's log lines (whose number depends on the runtime's logging, not on gcsctl). */
  readonly stderr: string
  /** gcsctl's log lines (`gcsctl: warn: …`), in order. */
  readonly logs: ReadonlyArray<string>
  /** Everything written to stderr. */
  readonly rawStderr: string
  readonly stdoutBytes: Buffer
}

const logLine = /^gcsctl: (?:trace|debug|info|warn|error|fatal): /

/** Options of an in-process invocation. */
export interface InvokeOptions {
  /** The bytes of stdin, as chunks; a stream lets a test feed it over time. */
  readonly stdin?: Stream.Stream<Uint8Array> | ReadonlyArray<Uint8Array | string>
  /** Signals the test will publish; see `signalHub`. */
  readonly signals?: PubSub.PubSub<HandledSignal>
  /** Called with everything written to stdout so far, after each write. */
  readonly onStdout?: (text: string) => Effect.Effect<void>
  /** Called with everything written to stderr so far, after each write. */
  readonly onStderr?: (text: string) => Effect.Effect<void>
  /** Once this many bytes were written to stdout, further writes fail with EPIPE (its reader went away). */
  readonly closeStdoutAfter?: number
  /** Whether stderr looks like a terminal (a person is watching). */
  readonly stderrIsTerminal?: boolean
}

const toBytes = (chunk: Uint8Array | string): Uint8Array =>
  typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk

/** A hub to deliver signals to an in-process invocation; it replays, so no signal is lost to a late subscriber. */
export const signalHub = (): Effect.Effect<PubSub.PubSub<HandledSignal>> =>
  PubSub.unbounded<HandledSignal>({ replay: 8 })

/** Runs `gcsctl ...args` in-process. */
export const invoke = (args: ReadonlyArray<string>, options: InvokeOptions = {}): Effect.Effect<Outcome> =>
  Effect.gen(function* () {
    const out: Array<Uint8Array> = []
    const err: Array<Uint8Array> = []
    const stdin =
      options.stdin === undefined
        ? Stream.empty
        : Array.isArray(options.stdin)
          ? Stream.fromIterable((options.stdin as ReadonlyArray<Uint8Array | string>).map(toBytes))
          : (options.stdin as Stream.Stream<Uint8Array>)
    const stdio = Layer.succeed(Stdio, {
      stdin,
      out: (chunk) =>
        (options.closeStdoutAfter !== undefined && Buffer.concat(out).length >= options.closeStdoutAfter
          ? Effect.fail(new StdioError({ stream: "stdout", message: "write EPIPE", code: "EPIPE" }))
          : Effect.sync(() => void out.push(toBytes(chunk)))
        ).pipe(
          Effect.andThen(
            Effect.suspend(() => options.onStdout?.(Buffer.concat(out).toString("utf8")) ?? Effect.void)
          )
        ),
      err: (chunk) =>
        Effect.sync(() => void err.push(toBytes(chunk))).pipe(
          Effect.andThen(
            Effect.suspend(() => options.onStderr?.(Buffer.concat(err).toString("utf8")) ?? Effect.void)
          )
        ),
      terminal: Option.none(),
      stderrIsTerminal: options.stderrIsTerminal ?? false
    })
    const hub = options.signals
    const signals = Layer.succeed(Signals, {
      receive: (wanted) =>
        hub === undefined
          ? Stream.never
          : Stream.fromPubSub(hub).pipe(Stream.filter((s) => wanted.includes(s)))
    })
    const status = yield* runCli(args).pipe(
      Effect.provide(Layer.mergeAll(NodeServices.layer, stdio, signals, Transport.layer))
    )
    const stdoutBytes = Buffer.concat(out)
    const rawStderr = Buffer.concat(err).toString("utf8")
    const lines = rawStderr.split(/(?<=\n)/)
    return {
      status,
      stdoutBytes,
      stdout: stdoutBytes.toString("utf8"),
      stderr: lines.filter((line) => !logLine.test(line)).join(""),
      logs: lines.filter((line) => logLine.test(line)).map((line) => line.trimEnd()),
      rawStderr
    }
  })

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

/** The built executable, rebuilt with `tsc -b` when a source is newer than it. */
export const builtCli = (): string => {
  const packageDir = join(root, "packages", "cli")
  const entry = join(packageDir, "dist", ".tsbuildinfo")
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((latest, entry) => {
      const path = join(dir, entry.name)
      return Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
    }, 0)
  const built = (() => {
    try {
      return statSync(entry).mtimeMs
    } catch {
      return 0
    }
  })()
  const sources = ["protocol", "transport", "runtime", "guest", "cli"].map((p) =>
    newest(join(root, "packages", p, "src"))
  )
  if (built < Math.max(...sources)) {
    execFileSync(
      process.execPath,
      [join(root, "node_modules", "typescript", "bin", "tsc"), "-b", packageDir],
      {
        cwd: root,
        stdio: "inherit",
        // tsc turns on Node's compile cache, which would leave a directory in the tests' TMPDIR.
        env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: "1" }
      }
    )
  }
  return join(packageDir, "bin", "gcsctl.js")
}
