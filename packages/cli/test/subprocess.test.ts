/**
 * The built executable, as a user runs it: `node packages/cli/bin/gcsctl.js`.
 * Everything else is tested in-process; these check the real entry point
 * (process stdio, exit status, no stack traces) and two processes talking.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { builtCli } from "./harness.js"

interface Finished {
  readonly status: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

const finished = (child: ChildProcess): Promise<Finished> =>
  new Promise((resolve, reject) => {
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.on("error", reject)
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }))
  })

let cli = ""

const gcsctl = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env): ChildProcess =>
  spawn(process.execPath, [cli, ...args], { env, stdio: ["pipe", "pipe", "pipe"] })

describe("the gcsctl executable", () => {
  beforeAll(() => {
    cli = builtCli()
  }, 300_000)

  it("runs a command on the embedded guest and removes its private directory", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "gcsctl-bin-"))
    try {
      const child = gcsctl(["run", "-i", "--", "sh", "-c", "tr a-z A-Z; echo err >&2; exit 3"], {
        ...process.env,
        TMPDIR: tmp
      })
      child.stdin?.end("relayed through the bridge\n")
      const result = await finished(child)
      expect(result).toEqual({
        status: 3,
        signal: null,
        stdout: "RELAYED THROUGH THE BRIDGE\n",
        stderr: "err\n"
      })
      expect(readdirSync(tmp)).toEqual([])
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })

  it("a user's mistake is one line on stderr, status 2, no stack trace", async () => {
    const result = await finished(gcsctl(["run", "--guest", "hvsock://not-a-guid", "--", "true"]))
    expect(result.status).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toMatch(/^gcsctl: bad --guest: [^\n]*\n$/)
  })

  it("run --guest hybrid://… against a separately started gcsctl guest --connect unix://…", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gcsctl-pair-"))
    try {
      const socket = join(dir, "gcs.sock")
      const guest = gcsctl(["guest", "--connect", `unix://${socket}`, "--once"])
      const host = gcsctl([
        "run",
        "--guest",
        `hybrid://${socket}`,
        "--",
        "sh",
        "-c",
        "echo from the guest process; exit 6"
      ])
      const [hostResult, guestResult] = await Promise.all([finished(host), finished(guest)])
      expect(hostResult).toEqual({ status: 6, signal: null, stdout: "from the guest process\n", stderr: "" })
      expect(guestResult).toMatchObject({ status: 0, stdout: "" })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
