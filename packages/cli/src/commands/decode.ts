/**
 * `gcsctl decode [--hex]`: a captured bridge byte stream on stdin, one JSON
 * line per frame (and per damaged region) on stdout.
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import { Command } from "effect/cli"
import { decodeCapture, type DamageReport, isDamage } from "../CaptureDecoder.js"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode, setExitStatus } from "../ExitStatus.js"
import * as CliOptions from "../options.js"
import { Stdio } from "../Stdio.js"

const summary = (damage: ReadonlyArray<DamageReport>): string => {
  const lost = damage.find((report) => report.error === "Unresynchronised")
  const tail =
    lost === undefined
      ? "; decoding resynchronised after each"
      : `; could not resynchronise after offset ${lost.offset}`
  return `gcsctl decode: ${damage.length} damaged region(s), the first at offset ${damage[0]!.offset}${tail}\n`
}

/**
 * The `decode` command.
 *
 * @since 0.1.0
 */
export const decode = Command.make(
  "decode",
  { hex: CliOptions.boolean("hex", "The input is hex text (whitespace is ignored) rather than raw bytes.") },
  ({ hex }) =>
    Effect.gen(function* () {
      const stdio = yield* Stdio
      const damage: Array<DamageReport> = []
      yield* decodeCapture(stdio.stdin, { hex }).pipe(
        Stream.tap((report) => Effect.sync(() => isDamage(report) && damage.push(report))),
        Stream.map((report) => `${JSON.stringify(report)}\n`),
        // One write per chunk of reports rather than per line.
        Stream.runForEachArray((lines) => stdio.out(lines.join("")))
      )
      if (damage.length > 0) {
        yield* stdio.err(summary(damage))
        yield* setExitStatus(ExitCode.Failure)
      }
    }).pipe(reportFailures("decode", ExitCode.Failure))
).pipe(
  Command.withDescription(
    "Decode a captured bridge byte stream from stdin: one JSON line per frame (type, id, size, decoded body). " +
      "Damage is reported with its byte offset, and decoding resumes at the next plausible frame header."
  )
)
