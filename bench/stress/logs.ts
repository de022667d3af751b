/**
 * A logger for the stress runs: nothing is printed (a notification flood would
 * print thousands of warnings); warnings and errors are counted, and the
 * first few error texts kept, so a run can say whether the runtime logged a
 * failure of its own.
 */
import type { Layer } from "effect"
import { Cause, Logger, LogLevel } from "effect"

/** Counts of one window of logging. */
export interface LogCounts {
  warnings: number
  errors: number
  readonly firstErrors: Array<string>
}

let current: LogCounts = { warnings: 0, errors: 0, firstErrors: [] }

/** Starts a new window and returns it (filled in as the window runs). */
export const resetLogs = (): LogCounts => (current = { warnings: 0, errors: 0, firstErrors: [] })

const counting = Logger.make(({ cause, logLevel, message }) => {
  if (LogLevel.isGreaterThanOrEqualTo(logLevel, "Error")) {
    current.errors++
    if (current.firstErrors.length < 3) {
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      current.firstErrors.push(
        cause.reasons.length === 0 ? text : `${text}: ${Cause.pretty(cause).split("\n")[0]}`
      )
    }
  } else if (LogLevel.isGreaterThanOrEqualTo(logLevel, "Warn")) {
    current.warnings++
  }
})

/** The counting logger in place of the default one. */
export const CountingLogger: Layer.Layer<never> = Logger.layer([counting])
