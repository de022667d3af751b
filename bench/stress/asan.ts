/**
 * Runs the native addon's own sanitizer entry (native/scripts/asan.sh: the
 * addon rebuilt with AddressSanitizer in a private staging copy, its test
 * suite run with libasan preloaded, LeakSanitizer reports through the addon
 * counted as failures) and condenses what it printed.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"

/** What the sanitizer run reported. */
export interface AsanResult {
  /** False when the native package offers no such script. */
  readonly ran: boolean
  readonly script: string
  readonly exitCode: number | null
  readonly seconds: number
  /** The lines that summarise it: test counts and the script's own `asan:` verdict lines. */
  readonly summary: ReadonlyArray<string>
  /** The last lines of its output, for a failure. */
  readonly tail: ReadonlyArray<string>
}

// Vitest colours its summary even without a terminal in some setups.
// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "")

/** Runs `native/scripts/asan.sh` from the repository at `root`. */
export const runAsan = (root: string, log: (line: string) => void): Promise<AsanResult> => {
  const script = join(root, "native/scripts/asan.sh")
  if (!existsSync(script)) {
    return Promise.resolve({ ran: false, script, exitCode: null, seconds: 0, summary: [], tail: [] })
  }
  const t0 = Date.now()
  return new Promise((resolve) => {
    const child = spawn("bash", [script], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CI: "1" }
    })
    const lines: Array<string> = []
    const take = (data: Buffer) => {
      for (const line of stripAnsi(data.toString("utf8")).split("\n")) {
        if (line.trim() === "") continue
        lines.push(line)
        if (line.startsWith("asan:")) log(`  ${line}`)
      }
      if (lines.length > 5000) lines.splice(0, lines.length - 5000)
    }
    child.stdout.on("data", take)
    child.stderr.on("data", take)
    child.on("close", (code) => {
      resolve({
        ran: true,
        script,
        exitCode: code,
        seconds: (Date.now() - t0) / 1000,
        summary: lines
          .filter((l) => l.startsWith("asan:") || /^\s*(Test Files|Tests)\s/.test(l))
          .map((l) => l.trim()),
        tail: lines.slice(-40)
      })
    })
  })
}
