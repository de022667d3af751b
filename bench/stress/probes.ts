/**
 * Unhandled promise rejections and uncaught exceptions of the stress run,
 * counted and reported rather than fatal, so that one bug does not hide the
 * rest of the table.
 */
let unhandledRejections = 0
let uncaughtExceptions = 0
const firstProblems: Array<string> = []

const remember = (what: string, value: unknown) => {
  if (firstProblems.length < 10) {
    firstProblems.push(`${what}: ${value instanceof Error ? (value.stack ?? value.message) : String(value)}`)
  }
}

process.on("unhandledRejection", (reason) => {
  unhandledRejections++
  remember("unhandled rejection", reason)
})
process.on("uncaughtException", (error) => {
  uncaughtExceptions++
  remember("uncaught exception", error)
})

/** Unhandled rejections and uncaught exceptions seen so far, and the first few of them. */
export const processProblems = (): {
  readonly unhandledRejections: number
  readonly uncaughtExceptions: number
  readonly first: ReadonlyArray<string>
} => ({ unhandledRejections, uncaughtExceptions, first: [...firstProblems] })
