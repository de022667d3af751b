import type { SuiteResult } from "./types.js"

const format = (n: number): string =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString("en-US") : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)

/** Renders suites as Markdown tables, with the machine and run parameters on top when `document` is set. */
export const renderMarkdown = (
  results: ReadonlyArray<SuiteResult>,
  machine: Record<string, string | number>,
  run: { quick: boolean; rounds: number },
  document = false
): string => {
  const lines: Array<string> = []
  if (document) {
    lines.push("# Benchmark results", "")
    lines.push(
      "Produced by `npm run bench` (bench/main.ts). Every figure is the median of interleaved rounds, with the",
      "min-max beside it, and is compared with a reference measured in the same run on the same machine.",
      ""
    )
    lines.push(
      `Machine: ${Object.entries(machine)
        .map(([k, v]) => `${k} ${v}`)
        .join("; ")}.`
    )
    lines.push(`Rounds: ${run.rounds}${run.quick ? " (quick smoke: not representative)" : ""}.`, "")
  }
  for (const result of results) {
    lines.push(`## ${result.title}`, "")
    lines.push("| measurement | median | min-max | unit | host CPU µs/op | vs reference | note |")
    lines.push("|---|---:|---:|---|---:|---|---|")
    for (const m of result.measurements) {
      const ref = m.reference ? result.measurements.find((r) => r.name === m.reference) : undefined
      const ratio =
        ref && ref.median !== 0 ? `${((m.median / ref.median) * 100).toFixed(0)} % of ${ref.name}` : ""
      lines.push(
        `| ${m.name} | ${format(m.median)} | ${format(m.min)}-${format(m.max)} | ${m.unit} | ${
          m.cpuMicrosPerOp === undefined ? "" : format(m.cpuMicrosPerOp)
        } | ${ratio} | ${m.note ?? ""} |`
      )
    }
    lines.push("")
    for (const note of result.notes) lines.push(note, "")
  }
  return lines.join("\n")
}
