/**
 * vitest global setup: every test run gets a private temporary directory
 * (TMPDIR, inherited by the test workers and every process they start), and
 * the run fails if a test left anything in it — a test that creates a socket
 * directory or a scratch file also removes it.
 */
import { chmodSync, mkdtempSync, readdirSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export default function setup(): () => void {
  const outer = tmpdir()
  // The realpath keeps socket paths short and free of links; the prefix says who made it.
  const dir = realpathSync(mkdtempSync(join(outer, "gcs-test-run-")))
  // Sticky and open to all, as /tmp: tests that connect as another uid must reach their sockets.
  chmodSync(dir, 0o1777)
  process.env["TMPDIR"] = dir
  return () => {
    process.env["TMPDIR"] = outer
    const left = readdirSync(dir)
    rmSync(dir, { recursive: true, force: true })
    if (left.length > 0) {
      throw new Error(
        `tests left ${left.length} entries in their temporary directory: ${left.slice(0, 20).join(", ")}`
      )
    }
  }
}
