/**
 * gcsctl's log lines on stderr. What reaches the logger may come from a
 * hostile guest at any rate (100,000 notifications for unknown containers),
 * and `process.stderr.write` to a pipe queues without bound, so this logger:
 *
 * - escapes control characters (a guest's text never drives the terminal);
 * - shows at most `burst` lines of one kind (level and message with numbers
 *   and ids blanked) per `window`, then one summary with the count of the rest;
 * - hands lines to one writer that waits for each write to reach the OS, with
 *   at most `queued` lines waiting; lines beyond that are counted and the
 *   count is said once stderr catches up.
 */
import { Cause, Deferred, Effect, Fiber, Logger, Queue, References, type Scope } from "effect"
import type { StdioError } from "../CliError.js"
import { Stdio, type StdioService } from "../Stdio.js"
import { escapeControls } from "./terminalText.js"

/** The bounds of the logger; the defaults suit a person at a terminal. */
export interface LogLimits {
  /** Lines of one kind shown per window (Info and above; Debug and Trace are only bounded by `queued`). */
  readonly burst: number
  /** Length of the rate window, in milliseconds. */
  readonly windowMillis: number
  /** Lines waiting for stderr before new ones are dropped (and counted). */
  readonly queued: number
  /** Longest line, in characters; the rest is cut and its length said. */
  readonly maxLine: number
  /** Kinds tracked per window; further kinds share one budget. */
  readonly kinds: number
}

/** Default bounds: 5 lines of a kind per second, 256 lines (at most 4 MiB) waiting. */
export const defaultLimits: LogLimits = {
  burst: 5,
  windowMillis: 1000,
  queued: 256,
  maxLine: 16_384,
  kinds: 256
}

const part = (value: unknown): string =>
  Cause.isCause(value)
    ? Cause.pretty(value)
    : value instanceof Error
      ? value.message
      : typeof value === "string"
        ? value
        : (JSON.stringify(value) ?? String(value))

/** The message, its annotations as `key=value` (what `--log-level trace` shows of each frame), and the cause. */
const render = (
  message: unknown,
  annotations: Readonly<Record<string, unknown>>,
  cause: Cause.Cause<unknown>
) => {
  const parts = (Array.isArray(message) ? message : [message]).map(part)
  for (const [key, value] of Object.entries(annotations)) parts.push(`${key}=${part(value)}`)
  if (cause.reasons.length > 0) parts.push(`(${Cause.pretty(cause).split("\n")[0] ?? ""})`)
  return escapeControls(parts.join(" ").replace(/\s+/g, " ").trim())
}

/** What makes two lines "the same warning": the text with numbers, hex ids and GUIDs blanked. */
const kindOf = (level: string, text: string): string =>
  `${level} ${text.replace(/[0-9A-Fa-f][0-9A-Fa-f-]{5,}|\d+/g, "#")}`

const rateLimited = new Set(["Info", "Warn", "Error", "Fatal"])

/** Something to write to stderr: a log line, or a caller's chunk it waits for. */
type Item =
  string | { readonly chunk: Uint8Array | string; readonly written: Deferred.Deferred<void, StdioError> }

/**
 * The logger and the stderr everything else writes to, sharing one writer so
 * that lines keep their order (a log line comes before the failure it led
 * to). Log lines never wait: beyond `queued` they are counted and dropped.
 * Callers of `err` wait for room and for their bytes to reach the OS, as
 * with `Stdio.err`. When the scope closes, what is still queued and the
 * summaries are written, for at most a second (a stderr nobody reads must
 * not keep gcsctl alive).
 */
export const make = (
  limits: LogLimits = defaultLimits
): Effect.Effect<
  { readonly logger: Logger.Logger<unknown, void>; readonly err: StdioService["err"] },
  never,
  Stdio | Scope.Scope
> =>
  Effect.gen(function* () {
    const stdio = yield* Stdio
    const queue = yield* Queue.bounded<Item>(limits.queued)
    let dropped = 0
    const kinds = new Map<string, { shown: number; suppressed: number; last: string; level: string }>()
    const enqueue = (line: string) => {
      if (!Queue.offerUnsafe(queue, line)) dropped++
    }
    const summarise = () => {
      for (const kind of kinds.values()) {
        if (kind.suppressed > 0) {
          enqueue(`gcsctl: ${kind.level}: ${kind.suppressed} more like this: ${kind.last}\n`)
        }
      }
      kinds.clear()
    }
    const droppedNote = () => {
      const note = dropped > 0 ? `gcsctl: warn: ${dropped} log lines dropped: stderr is not keeping up\n` : ""
      dropped = 0
      return note
    }
    // Taken from the queue, not yet handed to stderr: kept here so that a
    // writer interrupted at the end loses nothing (the finalizer writes them).
    let taken: Array<Item> = []
    /** Writes what was taken, in order: runs of log lines as one write, each caller's chunk on its own. */
    const writeTaken = Effect.gen(function* () {
      while (taken.length > 0) {
        const first = taken[0]!
        if (typeof first !== "string") {
          taken.shift()
          yield* Deferred.into(stdio.err(first.chunk), first.written)
          continue
        }
        const run = taken.findIndex((item) => typeof item !== "string")
        const lines = taken.splice(0, run < 0 ? taken.length : run) as Array<string>
        if (taken.length === 0) lines.push(droppedNote())
        const text = lines.join("")
        if (text !== "") yield* Effect.ignore(stdio.err(text))
      }
    })
    const writer = yield* Effect.forkScoped(
      Effect.forever(
        Effect.andThen(
          Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(restore(Queue.takeAll(queue)), (items) => Effect.sync(() => void (taken = items)))
          ),
          writeTaken
        )
      )
    )
    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(Effect.sleep(limits.windowMillis), Effect.sync(summarise)))
    )
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Fiber.interrupt(writer)
        summarise()
        taken = [...taken, ...(yield* Queue.clear(queue)), droppedNote()]
        yield* writeTaken.pipe(Effect.interruptible, Effect.timeout("1 second"), Effect.ignore)
      })
    )
    const err = (chunk: Uint8Array | string) =>
      Effect.gen(function* () {
        const written = yield* Deferred.make<void, StdioError>()
        yield* Queue.offer(queue, { chunk, written })
        return yield* Deferred.await(written)
      })
    const logger = Logger.make<unknown, void>(({ cause, fiber, logLevel, message }) => {
      const level = logLevel.toLowerCase()
      let text = render(message, fiber.getRef(References.CurrentLogAnnotations), cause)
      if (text.length > limits.maxLine) {
        text = `${text.slice(0, limits.maxLine)}… (${text.length - limits.maxLine} more characters)`
      }
      if (rateLimited.has(logLevel)) {
        const exact = kindOf(level, text)
        const key = kinds.has(exact) || kinds.size < limits.kinds ? exact : `${level} *`
        const kind = kinds.get(key) ?? { shown: 0, suppressed: 0, last: "", level }
        kinds.set(key, kind)
        if (kind.shown >= limits.burst) {
          kind.suppressed++
          kind.last = text
          return
        }
        kind.shown++
      }
      enqueue(`gcsctl: ${level}: ${text}\n`)
    })
    return { logger, err }
  })
