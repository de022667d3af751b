/**
 * The built executable, as a user runs it: `node packages/cli/bin/gcsctl.js`.
 * Everything else is tested in-process; these check the real entry point
 * (process stdio, exit status, no stack traces) and two processes talking.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { builtCli } from "./harness.js"

interface Finished {
  readonly status: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * How the child ended. One that has not ended after `killAfter` ms is killed
 * (SIGKILL), so a hang shows as `signal: "SIGKILL"` rather than as a test
 * timeout.
 */
const finished = (child: ChildProcess, killAfter = 20_000): Promise<Finished> =>
  new Promise((resolve, reject) => {
    let stdout = ""
    let stderr = ""
    const killer = setTimeout(() => child.kill("SIGKILL"), killAfter)
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.on("error", reject)
    child.on("close", (status, signal) => {
      clearTimeout(killer)
      resolve({ status, signal, stdout, stderr })
    })
  })

/** Resolves once `stream` has carried `text`. */
const seen = (stream: NodeJS.ReadableStream | null, text: string): Promise<void> =>
  new Promise((resolve) => {
    let so = ""
    const onData = (chunk: Buffer) => {
      so += chunk.toString("utf8")
      if (so.includes(text)) {
        stream?.off("data", onData)
        resolve()
      }
    }
    stream?.on("data", onData)
  })

let cli = ""
const here = dirname(fileURLToPath(import.meta.url))

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

  it("relays through its own descriptors: a file into stdin, 8 MB out, and 141 when the reader goes away", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "gcsctl-fd-"))
    try {
      writeFileSync(join(tmp, "in"), "x".repeat(3_000_000))
      const input = openSync(join(tmp, "in"), "r")
      const script = "wc -c; head -c 8000000 /dev/zero; echo done >&2"
      const child = spawn(process.execPath, [cli, "run", "-i", "--", "sh", "-c", script], {
        stdio: [input, "pipe", "pipe"]
      })
      closeSync(input)
      const result = await finished(child)
      expect(result.status).toBe(0)
      expect(result.stdout.length).toBe(8_000_008)
      expect(result.stdout.startsWith("3000000\n\0")).toBe(true)
      expect(result.stderr).toBe("done\n")

      const endless = gcsctl(["run", "--", "yes"])
      endless.stdout?.once("data", () => endless.stdout?.destroy())
      expect((await finished(endless)).status).toBe(141)
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

  /** `gcsctl guest --once --fault …` and `gcsctl run --guest …` over sockets in a fresh directory. */
  const faultyPair = async (
    faults: ReadonlyArray<string>,
    run: ReadonlyArray<string>,
    body: (host: ChildProcess) => Promise<void>
  ) => {
    const dir = mkdtempSync(join(tmpdir(), "gcsctl-sig-"))
    const socket = join(dir, "gcs.sock")
    const guest = gcsctl([
      "guest",
      "--connect",
      `unix://${socket}`,
      "--once",
      ...faults.flatMap((f) => ["--fault", f])
    ])
    try {
      const host = gcsctl(["run", "--guest", `hybrid://${socket}`, ...run])
      const result = finished(host)
      await body(host)
      return await result
    } finally {
      guest.kill("SIGKILL")
      await finished(guest)
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it("a container guest silent after its process exited: SIGINT waits a bounded time, a second SIGINT ends gcsctl at once", async () => {
    // Messages 0-3 answer NegotiateProtocol, Create, Start and ExecuteProcess; then the guest says nothing.
    const result = await faultyPair(
      ["silent-after=4"],
      ["--container", "--", "sh", "-c", "echo ready"],
      async (host) => {
        await seen(host.stdout, "ready\n")
        host.kill("SIGINT")
        await seen(host.stderr, "send SIGINT again to stop at once")
        host.kill("SIGINT")
      }
    )
    expect(result).toMatchObject({ status: 130, signal: null, stdout: "ready\n" })
    expect(result.stderr).toBe(
      "gcsctl: waiting for the guest after SIGINT (at most 5s); send SIGINT again to stop at once\n" +
        "gcsctl run: interrupted by SIGINT again: stopped at once, without waiting for the guest; what it ran may still be running there\n"
    )
  })

  it("a guest mute after ExecuteProcess: one SIGINT ends gcsctl after a bounded wait", async () => {
    // Messages 0-1 answer NegotiateProtocol and ExecuteProcess; SignalProcess is never answered.
    const result = await faultyPair(
      ["silent-after=2"],
      ["--", "sh", "-c", "echo ready; sleep 30"],
      async (host) => {
        await seen(host.stdout, "ready\n")
        host.kill("SIGINT")
      }
    )
    expect(result).toMatchObject({ status: 130, signal: null, stdout: "ready\n" })
    expect(result.stderr.split("\n").slice(-2)).toEqual([
      "gcsctl run: interrupted by SIGINT, which the guest did not deliver to the process (the guest did not answer within 5s); it may still be running in the guest",
      ""
    ])
  })

  /** `gcsctl run` against a re-dialling guest that drops the bridge after every second message it sends. */
  const droppingGuest = async (run: ReadonlyArray<string>) => {
    const dir = mkdtempSync(join(tmpdir(), "gcsctl-drop-"))
    const socket = join(dir, "gcs.sock")
    const guest = gcsctl(["guest", "--connect", `unix://${socket}`, "--fault", "drop-after=2"])
    try {
      return await finished(gcsctl(["run", "--guest", `hybrid://${socket}`, ...run]))
    } finally {
      guest.kill("SIGKILL")
      await finished(guest)
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const command = ["--", "sh", "-c", "echo before; sleep 0.5; echo after >&2; exit 7"]

  it("run --reconnect: a guest that drops the bridge and re-dials does not end the command", async () => {
    // The guest drops the bridge after answering ExecuteProcess, and again after each exit it reports.
    const result = await droppingGuest(["--reconnect=10s", ...command])
    expect(result).toMatchObject({ status: 7, signal: null, stdout: "before\n" })
    const lines = result.stderr.split("\n")
    expect(lines).toContain("after")
    expect(result.stderr).toContain("waiting up to 10s for the guest to re-dial")
  })

  it("without --reconnect the same drop ends the command with the bridge's error", async () => {
    const result = await droppingGuest(command)
    expect(result.status).not.toBe(7)
    expect(result.stderr).toContain("the guest closed the connection")
  })

  it("live migration: a second host process takes the guest over from the state the first one saved", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gcsctl-migrate-"))
    const socket = join(dir, "gcs.sock")
    const [go, state] = [join(dir, "go"), join(dir, "state.json")]
    const host = (args: ReadonlyArray<string>) =>
      spawn(process.execPath, [join(here, "migrationHost.mjs"), ...args], {
        stdio: ["ignore", "pipe", "pipe"]
      })
    const guest = gcsctl(["guest", "--connect", `unix://${socket}`])
    try {
      const first = await finished(host(["save", `hybrid://${socket}`, go, state]))
      expect(first).toMatchObject({ signal: "SIGKILL" })
      expect(first.stdout).toContain("host A read: before")
      const saved = JSON.parse(readFileSync(state, "utf8"))
      expect(saved.processes).toHaveLength(2)
      // Both processes go on, and end, while no host is there: their exits and output wait for the next host.
      writeFileSync(go, "")
      const second = await finished(host(["take", `hybrid://${socket}`, state]))
      expect(second).toMatchObject({ status: 0, signal: null })
      const line = second.stdout.split("\n").find((l) => l.startsWith("results ")) ?? "results []"
      const results = JSON.parse(line.slice("results ".length))
      const [init, uvm] = saved.processes.map((p: { pid: number }) =>
        results.find((r: { pid: number }) => r.pid === p.pid)
      )
      expect(init.code).toBe(7)
      // The re-dialled stream replays its tail first, so "before" may come again.
      expect(init.output).toMatch(/^(before\n)?after\n$/)
      expect(uvm).toEqual({ pid: saved.processes[1].pid, output: "", code: 3 })
    } finally {
      guest.kill("SIGKILL")
      await finished(guest)
      rmSync(dir, { recursive: true, force: true })
    }
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
