/**
 * `gcsctl decode [--hex] [FILE]`: a captured bridge byte stream (or a
 * `--capture` file, recognised by its magic) from FILE or stdin, one JSON
 * line per frame (and one per damaged region, and one per stdio record of a
 * `--capture-stdio` file) on stdout; the summary on
 * stderr holds only counts and offsets, nothing the capture's bytes chose.
 *
 * @since 0.1.0
 */
import { Effect, Option, Stream } from "effect"
import { Argument, Command } from "effect/cli"
import { createReadStream } from "node:fs"
import { StdioError } from "../CliError.js"
import { type CaptureReport, decodeCapture, isDamage } from "../CaptureDecoder.js"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode, setExitStatus } from "../ExitStatus.js"
import * as CliOptions from "../options.js"
import { Stdio } from "../Stdio.js"

/** What the summary line needs, counted as the reports stream by (nothing is kept per report). */
interface DamageTally {
  regions: number
  first: number
  /** Offset of a region the input ended in, if any. */
  lost: number | undefined
}

const summary = ({ first, lost, regions }: DamageTally): string => {
  const tail =
    lost === undefined
      ? "; decoding resynchronised after each"
      : `; could not resynchronise after offset ${lost}`
  return `gcsctl decode: ${regions} damaged region(s), the first at offset ${first}${tail}\n`
}

// JSON.stringify escapes C0 controls in strings, but not DEL, the C1 controls
// (U+009B is a CSI to some terminals) or the line separators: a guest's string
// must reach the terminal inert, and `\uXXXX` is still the same JSON.
const unsafe = /[\u007f-\u009f\u2028\u2029]/g
const escapeUnsafe = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/** One output line: JSON, with nothing a terminal would act on. */
const line = (report: CaptureReport): string => `${JSON.stringify(report).replace(unsafe, escapeUnsafe)}\n`

/** A file's bytes as a stream, read as they are consumed. */
const readFile = (path: string): Stream.Stream<Uint8Array, StdioError> =>
  Stream.fromAsyncIterable(
    createReadStream(path) as AsyncIterable<Uint8Array>,
    (e) =>
      new StdioError({
        stream: "stdin",
        message: `cannot read ${e instanceof Error ? e.message : String(e)}`
      })
  )

/**
 * The `decode` command.
 *
 * @since 0.1.0
 */
export const decode = Command.make(
  "decode",
  {
    hex: CliOptions.boolean("hex", "The input is hex text (whitespace is ignored) rather than raw bytes."),
    file: Argument.String("file").pipe(
      Argument.withDescription("The capture to read (default: stdin)."),
      Argument.optional
    )
  },
  ({ file, hex }) =>
    Effect.gen(function* () {
      const stdio = yield* Stdio
      const input = Option.match(file, { onNone: () => stdio.stdin, onSome: readFile })
      const tally: DamageTally = { regions: 0, first: 0, lost: undefined }
      const count = (report: CaptureReport) => {
        if (!isDamage(report)) return
        if (tally.regions++ === 0) tally.first = report.offset
        if (!report.resynchronised) tally.lost = report.offset
      }
      yield* decodeCapture(input, { hex }).pipe(
        Stream.map((report) => {
          count(report)
          return line(report)
        }),
        // One write per chunk of reports rather than per line.
        Stream.runForEachArray((lines) => stdio.out(lines.join("")))
      )
      if (tally.regions > 0) {
        yield* stdio.err(summary(tally))
        yield* setExitStatus(ExitCode.Failure)
      }
    }).pipe(reportFailures("decode", ExitCode.Failure))
).pipe(
  Command.withDescription(
    "Decode a captured bridge byte stream from FILE or stdin: one JSON line per frame (type, id, size, decoded body); " +
      "a `run --capture` file is recognised and each line says who sent the frame (from) and when (time, seconds); " +
      "a stdio record (--capture-stdio) is one line with its port, bytes and text (or base64 when not UTF-8). " +
      "Each damaged region is one line with its byte range and count, and decoding resumes at the next plausible frame header."
  )
)
