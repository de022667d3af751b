/**
 * Shared shapes for benchmark suites. Every figure is reported beside a
 * reference measured in the same run on the same machine, as medians of
 * several interleaved rounds with their min-max, so that a table can be read
 * without knowing what else the machine was doing.
 */

/** One measured figure (a median over rounds) with its spread. */
export interface Measurement {
  /** What was measured, e.g. "Schema decode WaitForProcess response". */
  readonly name: string
  /** Unit of `median`/`min`/`max`, e.g. "frames/s", "MB/s", "µs", "KiB". */
  readonly unit: string
  readonly median: number
  readonly min: number
  readonly max: number
  /** Host CPU time (user+system) per operation in µs, when measured. */
  readonly cpuMicrosPerOp?: number
  /** Name of the reference row in the same suite this figure is compared with. */
  readonly reference?: string
  /** Free text: what the ratio means, target, caveats. */
  readonly note?: string
}

/** One of issue 10's targets, judged on figures of the run it is part of. */
export interface Target {
  /** What is asked, e.g. "Start RPC, 1 in flight: host CPU ≤ 50 µs per call". */
  readonly target: string
  /** The figure judged (in `unit`) and its bound. */
  readonly value: number
  readonly limit: number
  readonly unit: string
  readonly met: boolean
  /** Our figure as shown (a share comes with the absolute figure). */
  readonly ours: string
  /** The reference or floor measured in the same run, as shown. */
  readonly reference: string
  /** The Go host's figure for the same row (issue 10's side-by-side run), or why there is none. */
  readonly go: string
  /** For a missed target: why, from the same run's data (the floor, the profile). */
  readonly why?: string
}

/** What a suite returns: its table and the prose that explains it. */
export interface SuiteResult {
  readonly suite: string
  readonly title: string
  readonly measurements: ReadonlyArray<Measurement>
  /** Markdown paragraphs printed under the table. */
  readonly notes: ReadonlyArray<string>
  /** The issue 10 targets this suite's figures decide, gathered on top of the report. */
  readonly targets?: ReadonlyArray<Target>
}

/** Options every suite accepts. `quick` is the CI smoke: tiny sizes, one round. */
export interface SuiteOptions {
  readonly quick: boolean
  readonly rounds: number
}

/** A benchmark suite, registered in bench/main.ts. */
export interface BenchSuite {
  readonly name: string
  readonly run: (options: SuiteOptions) => Promise<SuiteResult>
}
